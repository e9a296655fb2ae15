// Credentials and TLS as users configure them, against real nats-server processes: right ones
// connect; wrong ones end in a typed error (auth_failed, tls_failed, invalid_config) with the
// server's or nats.c's reason, at once, without a retry storm and without the secret in it.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "credentials.hpp"
#include "nats_server.hpp"
#include "service_fixture.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// Long enough that a retried failure (the defect) cannot pass for a prompt answer, while the
// typed answer must come within `prompt`.
constexpr auto prompt = 3s;

settings auth_settings(const std::string& url) {
  auto s = fast_settings(url);
  s.request_timeout = 10s;
  s.lease_timeout = 10s;
  return s;
}

server_options auth_server(std::string config) {
  server_options o;
  o.jetstream = false;
  o.protocol_probe = false; // the plain probe is refused by these servers
  o.extra_config = std::move(config);
  return o;
}

// "tls://127.0.0.1:<port>" or with credentials in it.
std::string url_of(const nats_server& server, const std::string& scheme,
                   const std::string& userinfo = {}) {
  return scheme + "://" + (userinfo.empty() ? "" : userinfo + "@")
         + "127.0.0.1:" + std::to_string(server.port());
}

// Lines of the server log that record a rejected CONNECT.
int auth_errors(const nats_server& server) {
  std::ifstream in{server.log_file()};
  int n = 0;
  for (std::string line; std::getline(in, line);)
    n += line.find("authentication error") != std::string::npos;
  return n;
}

// The refusal every caller must get: typed, prompt, with the reason, never the secret.
struct refusal {
  caf::error err;
  clock_type::duration took{};
};

refusal get_connection_refused(service_fixture& f, const std::string& url = {}) {
  auto start = clock_type::now();
  auto h = f.svc->get_connection(url);
  refusal r;
  r.took = clock_type::now() - start;
  if (!h)
    r.err = h.error();
  return r;
}

void check_refusal(const refusal& r, errc code, const std::string& reason,
                   const std::string& secret) {
  INFO(describe(r.err));
  CHECK(code_of(r.err) == code);
  CHECK_THAT(detail_of(r.err), Catch::Contains(reason, Catch::CaseSensitive::No));
  CHECK(r.took < prompt);
  if (!secret.empty())
    CHECK(describe(r.err).find(secret) == std::string::npos);
}

// A TCP listener that plays a plaintext NATS server: it sends an INFO without TLS and records
// every byte a client sends back (a CONNECT would carry the credentials).
class plain_listener {
 public:
  plain_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
        || ::listen(fd_, 8) != 0
        || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("plain_listener: cannot listen");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread{[this] { serve(); }};
  }
  ~plain_listener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::string received() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return received_;
  }

 private:
  void serve() {
    std::vector<int> clients;
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}};
      for (int c : clients)
        fds.push_back({c, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 50) <= 0)
        continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          ++accepted_;
          std::string info
            = "INFO {\"server_id\":\"PLAIN\",\"version\":\"2.9.10\",\"go\":\"go1.19\","
              "\"host\":\"127.0.0.1\",\"port\":"
              + std::to_string(port_)
              + ",\"headers\":true,\"max_payload\":1048576,\"proto\":1}\r\n";
          (void)!::write(c, info.data(), info.size());
          clients.push_back(c);
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
          continue;
        char buf[4096];
        auto n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          std::lock_guard<std::mutex> guard{mtx_};
          received_.append(buf, static_cast<size_t>(n));
        } else {
          ::close(fds[i].fd);
          clients.erase(std::find(clients.begin(), clients.end(), fds[i].fd));
        }
      }
    }
    for (int c : clients)
      ::close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mtx_;
  std::string received_;
  std::thread thread_;
};

const char* const password = "s3cret-PASSWORD-x";
const char* const token = "s3cret-TOKEN-y";

// A server's authorization block that accepts user alice with `pw`.
std::string alice_accepts(const std::string& pw) {
  return "authorization { user: alice, password: \"" + pw + "\" }";
}

settings as_alice(const std::string& url, const std::string& pw) {
  auto s = auth_settings(url);
  s.user = "alice";
  s.password = pw;
  return s;
}

} // namespace

// -- TLS ------------------------------------------------------------------------------------------

TEST_CASE("TLS with the trusted CA connects and an untrusted CA ends in tls_failed at once",
          "[tls]") {
  test_credentials creds;
  nats_server server{auth_server(creds.server_tls())};
  {
    auto s = auth_settings(url_of(server, "tls"));
    s.tls_ca_file = creds.ca_file();
    service_fixture f{s};
    auto h = f.svc->get_connection();
    REQUIRE(h);
    CHECK(natsConnection_PublishString(h->get(), "tls.ok", "x") == NATS_OK);
  }
  auto s = auth_settings(url_of(server, "tls"));
  s.tls_ca_file = creds.other_ca_file();
  service_fixture f{s};
  auto r = get_connection_refused(f);
  check_refusal(r, errc::tls_failed, "certificate", "");
  auto gave_up = f.await_state(connection_state::gave_up, 5s);
  REQUIRE(gave_up);
  auto st = f.status_of(url_of(server, "tls"));
  REQUIRE(st);
  CHECK(st->restarts == 0);
}

TEST_CASE("mutual TLS connects with the client certificate and fails typed without one", "[tls]") {
  test_credentials creds;
  nats_server server{auth_server(creds.server_tls(true))};
  {
    auto s = auth_settings(url_of(server, "tls"));
    s.tls_ca_file = creds.ca_file();
    s.tls_cert_file = creds.client_cert();
    s.tls_key_file = creds.client_key();
    service_fixture f{s};
    auto h = f.svc->get_connection();
    REQUIRE(h);
    CHECK(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
  }
  auto s = auth_settings(url_of(server, "tls"));
  s.tls_ca_file = creds.ca_file();
  service_fixture f{s};
  auto r = get_connection_refused(f);
  check_refusal(r, errc::tls_failed, "client certificate", "");
  CHECK(f.await_state(connection_state::gave_up, 5s));
}

TEST_CASE("a tls:// URL never sends the password to a plaintext listener", "[tls][auth]") {
  plain_listener plain;
  auto url = "tls://alice:" + std::string{password} + "@127.0.0.1:" + std::to_string(plain.port());
  service_fixture f{auth_settings(url)};
  auto r = get_connection_refused(f);
  CHECK(plain.accepted() >= 1);
  CHECK(plain.received().find(password) == std::string::npos);
  CHECK(plain.received().find("CONNECT") == std::string::npos);
  check_refusal(r, errc::tls_failed, "secure connection", password);
}

TEST_CASE("a tls:// URL against a plaintext nats-server ends in tls_failed", "[tls]") {
  nats_server server{auth_server(alice_accepts(password))};
  auto url = url_of(server, "tls", "alice:" + std::string{password});
  service_fixture f{auth_settings(url)};
  auto r = get_connection_refused(f);
  check_refusal(r, errc::tls_failed, "secure connection", password);
  // The server never saw the credentials: no CONNECT, so no authentication either way.
  CHECK(auth_errors(server) == 0);
}

// -- credentials --------------------------------------------------------------------------------

TEST_CASE("user and password: right ones connect and a wrong password is auth_failed at once",
          "[auth]") {
  nats_server server{auth_server(alice_accepts(password))};
  {
    service_fixture f{as_alice(server.url(), password)};
    REQUIRE(f.svc->get_connection());
  }
  service_fixture f{as_alice(server.url(), "wrong-PASSWORD-z")};
  auto r = get_connection_refused(f);
  check_refusal(r, errc::auth_failed, "Authorization Violation", "wrong-PASSWORD-z");
  auto gave_up = f.await_state(connection_state::gave_up, 5s);
  REQUIRE(gave_up);
  CHECK(gave_up->detail.find("wrong-PASSWORD-z") == std::string::npos);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->restarts == 0);
  CHECK(st->last_error.find("wrong-PASSWORD-z") == std::string::npos);
  // Later requests get the same typed error, without a new attempt at the server.
  auto before = auth_errors(server);
  auto again = get_connection_refused(f);
  CHECK(code_of(again.err) == errc::auth_failed);
  CHECK(auth_errors(server) == before);
}

TEST_CASE("a token: the right one connects and a wrong one is auth_failed at once", "[auth]") {
  nats_server server{auth_server("authorization { token: \"" + std::string{token} + "\" }")};
  {
    auto s = auth_settings(server.url());
    s.token = token;
    service_fixture f{s};
    REQUIRE(f.svc->get_connection());
  }
  auto s = auth_settings(server.url());
  s.token = "wrong-TOKEN-q";
  service_fixture f{s};
  check_refusal(get_connection_refused(f), errc::auth_failed, "Authorization Violation",
                "wrong-TOKEN-q");
  // A token in the URL is the same credential, and just as wrong.
  auto in_url = get_connection_refused(f, url_of(server, "nats", "wrong-TOKEN-q"));
  check_refusal(in_url, errc::auth_failed, "Authorization Violation", "wrong-TOKEN-q");
}

TEST_CASE("an nkey: the right seed connects and a wrong seed is auth_failed at once", "[auth]") {
  test_credentials creds;
  auto user = make_user_nkey(creds.dir());
  auto other = make_user_nkey(creds.dir());
  REQUIRE(user.public_key.size() == 56);
  REQUIRE(user.public_key[0] == 'U');
  REQUIRE(user.seed.substr(0, 2) == "SU");
  nats_server server{
    auth_server("authorization { users = [ { nkey: \"" + user.public_key + "\" } ] }")};
  {
    auto s = auth_settings(server.url());
    s.nkey = user.public_key;
    s.nkey_seed_file = creds.write("user.nk", user.seed + "\n");
    service_fixture f{s};
    auto h = f.svc->get_connection();
    REQUIRE(h);
    CHECK(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
  }
  auto s = auth_settings(server.url());
  s.nkey = user.public_key;
  s.nkey_seed_file = creds.write("other.nk", other.seed + "\n");
  service_fixture f{s};
  check_refusal(get_connection_refused(f), errc::auth_failed, "Authorization Violation",
                other.seed);
}

TEST_CASE("a missing credentials file is a permanent typed error that is never retried", "[auth]") {
  nats_server server{auth_server("authorization { token: \"" + std::string{token} + "\" }")};
  auto s = auth_settings(server.url());
  s.creds_file = "/nonexistent/natsvisor-test/user.creds";
  service_fixture f{s};
  auto r = get_connection_refused(f);
  check_refusal(r, errc::invalid_config, "/nonexistent/natsvisor-test/user.creds", "");
  REQUIRE(f.await_state(connection_state::gave_up, 5s));
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->restarts == 0);
}

TEST_CASE("with wrong credentials every waiting caller gets auth_failed at once and the server "
          "sees a bounded number of attempts",
          "[auth][pool]") {
  nats_server server{auth_server(alice_accepts(password))};
  auto s = as_alice(server.url(), "wrong-PASSWORD-z");
  s.connection_pool_size = 4;
  // The defaults that made the storm: restarts and nats.c's retries left as users have them.
  s.policy = restart_policy{};
  s.policy.base_delay = 200ms;
  service_fixture f{s};
  auto start = clock_type::now();
  std::vector<std::future<caf::error>> callers;
  for (int i = 0; i < 4; ++i)
    callers.push_back(std::async(std::launch::async, [&] {
      auto l = f.svc->lease({}, 10s);
      return l ? caf::error{} : l.error();
    }));
  callers.push_back(std::async(std::launch::async, [&] {
    auto h = f.svc->get_connection();
    return h ? caf::error{} : h.error();
  }));
  callers.push_back(std::async(std::launch::async, [&] {
    auto reply = f.svc->request(outgoing{"auth.req", {}, {}}, 10s);
    return reply ? caf::error{} : reply.error();
  }));
  for (auto& c : callers) {
    auto err = c.get();
    INFO(describe(err));
    CHECK(code_of(err) == errc::auth_failed);
    CHECK_THAT(detail_of(err), Catch::Contains("Authorization Violation"));
  }
  CHECK(clock_type::now() - start < prompt);
  // At most one attempt per connection the callers made the pool open (4 slots + the shared
  // one), and none after: nothing is retried while the credentials stay wrong.
  auto bound = s.connection_pool_size + 1;
  CHECK(auth_errors(server) <= bound);
  CHECK_FALSE(eventually([&] { return auth_errors(server) > bound; }, 3s));
  auto l = f.svc->lease({}, 1s);
  REQUIRE_FALSE(l);
  CHECK(code_of(l.error()) == errc::auth_failed);
}

TEST_CASE("credentials the server stops accepting end in auth_failed and not in restarts",
          "[auth][faults]") {
  nats_server server{auth_server(alice_accepts(password))};
  auto s = as_alice(server.url(), password);
  s.nats.max_reconnect = 60; // nats.c alone would try for long
  service_fixture f{s};
  REQUIRE(f.svc->get_connection());
  // The same server (ports, store) comes back with another password.
  server.kill();
  {
    std::ofstream conf{server.log_file().substr(0, server.log_file().rfind('/')) + "/server.conf"};
    conf << alice_accepts("rotated-PASSWORD") << "\n";
  }
  server.start();
  auto gave_up = f.await_state(connection_state::gave_up, 10s);
  REQUIRE(gave_up);
  auto r = get_connection_refused(f);
  check_refusal(r, errc::auth_failed, "Violation", password);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->restarts == 0);
}

TEST_CASE("a server that only appears later and refuses the credentials ends in auth_failed",
          "[auth][faults]") {
  nats_server server{auth_server(alice_accepts(password))};
  server.kill();
  auto s = as_alice(server.url(), "wrong-PASSWORD-z");
  s.nats.max_reconnect = 60; // nats.c keeps trying while no server answers
  service_fixture f{s};
  auto waiting = std::async(std::launch::async, [&] { return get_connection_refused(f); });
  REQUIRE(f.await_state(connection_state::connecting, 5s));
  server.start();
  auto start = clock_type::now();
  auto r = waiting.get();
  CHECK(clock_type::now() - start < prompt);
  r.took = {}; // it waited for the server on purpose: only the time since it appeared counts
  check_refusal(r, errc::auth_failed, "Authorization Violation", "wrong-PASSWORD-z");
  // nats.c's background attempt and its one retry of the same refusal, then the typed attempt.
  CHECK(auth_errors(server) <= 3);
}
