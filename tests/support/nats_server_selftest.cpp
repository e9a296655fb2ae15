// Self-test of the nats_server fixture against a real nats-server.
// No main here: the project's test binary defines CATCH_CONFIG_MAIN.

#include "nats_server.hpp"

#include <catch2/catch.hpp>
#include <nats/nats.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

using natsvisor::testing::eventually;
using natsvisor::testing::nats_server;
using natsvisor::testing::server_options;

namespace {

/// True if something accepts a TCP connection on 127.0.0.1:port.
bool tcp_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

struct connection_deleter {
  void operator()(natsConnection* nc) const { natsConnection_Destroy(nc); }
};
using connection_ptr = std::unique_ptr<natsConnection, connection_deleter>;

/// Connects with nats.c; null on failure.
connection_ptr connect_to(const std::string& url) {
  natsConnection* nc = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) {
    natsConnection_Destroy(nc);
    return nullptr;
  }
  return connection_ptr{nc};
}

/// Connects with reconnects disabled. nats.c 3.4.1's natsConnection_Destroy
/// blocks for about reconnect_wait (2 s) when called while the client is
/// reconnecting to a killed server; tests that kill the server avoid that.
connection_ptr connect_no_reconnect(const std::string& url) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK)
    return nullptr;
  natsConnection* nc = nullptr;
  natsStatus s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK)
    s = natsOptions_SetAllowReconnect(opts, false);
  if (s == NATS_OK)
    s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    natsConnection_Destroy(nc);
    return nullptr;
  }
  return connection_ptr{nc};
}

} // namespace

TEST_CASE("fixture server starts with no connections", "[fixture]") {
  nats_server server;
  CHECK(server.running());
  CHECK(server.port() != server.monitor_port());
  CHECK(server.url() == "nats://127.0.0.1:" + std::to_string(server.port()));
  CHECK(std::filesystem::is_directory(server.store_dir()));
  // Counted before the raw TCP probe below: even a bare connect shows up in
  // /connz until the server notices the close.
  CHECK(server.connection_count() == 0);
  CHECK(tcp_accepts(server.port()));
}

TEST_CASE("fixture counts a nats.c connection", "[fixture]") {
  nats_server server;
  auto nc = connect_to(server.url());
  REQUIRE(nc != nullptr);
  CHECK(eventually([&] { return server.connection_count() == 1; }));
  nc.reset();
  CHECK(eventually([&] { return server.connection_count() == 0; }));
}

TEST_CASE("fixture kill refuses connections and start restores them", "[fixture]") {
  nats_server server;
  const int port = server.port();
  const int monitor_port = server.monitor_port();
  {
    auto nc = connect_no_reconnect(server.url());
    REQUIRE(nc != nullptr);
    REQUIRE(eventually([&] { return server.connection_count() == 1; }));

    server.kill();
    CHECK_FALSE(server.running());
    CHECK_FALSE(tcp_accepts(port));
    CHECK(server.connection_count() == -1);
  }

  server.start();
  CHECK(server.running());
  CHECK(server.port() == port);
  CHECK(server.monitor_port() == monitor_port);
  auto nc = connect_to(server.url());
  REQUIRE(nc != nullptr);
  CHECK(natsConnection_Status(nc.get()) == NATS_CONN_STATUS_CONNECTED);
  CHECK(eventually([&] { return server.connection_count() == 1; }));
}

TEST_CASE("fixture stop is graceful and restartable", "[fixture]") {
  nats_server server{server_options{false, 0}};
  const int port = server.port();
  server.stop();
  CHECK_FALSE(server.running());
  CHECK_FALSE(tcp_accepts(port));
  server.start();
  CHECK(tcp_accepts(port));
  CHECK_THROWS_AS(server.start(), std::logic_error);
}

TEST_CASE("fixture honours max_payload", "[fixture]") {
  nats_server server{server_options{true, 4096}};
  auto nc = connect_to(server.url());
  REQUIRE(nc != nullptr);
  CHECK(natsConnection_GetMaxPayload(nc.get()) == 4096);
}

TEST_CASE("fixture start fails clearly when the port is taken", "[fixture]") {
  nats_server server;
  server.kill();
  // Something else grabs the client port while the server is down.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  CHECK_THROWS_WITH(server.start(), Catch::Contains("already in use"));
  CHECK_FALSE(server.running());
  ::close(fd);
  // Once the port is free again the same fixture comes back up.
  server.start();
  CHECK(server.running());
}

TEST_CASE("eventually returns the last result at the deadline", "[fixture]") {
  int calls = 0;
  CHECK_FALSE(eventually([&] { return ++calls < 0; }, std::chrono::milliseconds(20)));
  CHECK(calls >= 2);
  CHECK(eventually([&] { return ++calls > 5; }));
}
