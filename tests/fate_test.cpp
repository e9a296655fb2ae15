// The fate of every message-path publish: written in order across outages, or reported to its
// sender (a typed error) or to watchers (counts). What arrived is counted independently of
// natsvisor: a JetStream stream made with raw nats.c captures every message the server got,
// and a raw nats.c reader reads it back in order.

#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/requests.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

/// A raw nats.c connection (not natsvisor's) with its JetStream context.
struct raw_reader {
  explicit raw_reader(const std::string& url) {
    REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  }
  ~raw_reader() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  raw_reader(const raw_reader&) = delete;
  raw_reader& operator=(const raw_reader&) = delete;

  uint64_t count(const char* stream) {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js, stream, nullptr, nullptr) != NATS_OK)
      return 0;
    auto n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
  }

  /// Every payload the stream holds, in the order the server got them.
  std::vector<std::string> payloads(const char* stream) {
    std::vector<std::string> out;
    auto n = count(stream);
    for (uint64_t seq = 1; seq <= n; ++seq) {
      natsMsg* m = nullptr;
      REQUIRE(js_GetMsg(&m, js, stream, seq, nullptr, nullptr) == NATS_OK);
      out.emplace_back(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
      natsMsg_Destroy(m);
    }
    return out;
  }

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
};

/// Publishes "0", "1", ... fire and forget on `subject` at about one per millisecond from a
/// thread of its own until stopped (or until `limit`).
struct steady_publisher {
  steady_publisher(caf::actor_system& sys, connection_api svc, std::string subject,
                   int first = 0)
    : next(first) {
    worker = std::thread{[this, &sys, svc, subject = std::move(subject)] {
      caf::scoped_actor pacer{sys};
      while (running.load()) {
        caf::anon_send(svc, pub_atom_v, std::string{},
                       outgoing{subject, std::to_string(next.load()), {}});
        ++next;
        // A tick of the rate, not a synchronization: nothing ever arrives in this mailbox.
        pacer->receive(caf::after(std::chrono::milliseconds(1)) >> [] { /* nop: tick */ });
      }
    }};
  }
  ~steady_publisher() { stop(); }
  void stop() {
    running = false;
    if (worker.joinable())
      worker.join();
  }
  std::atomic<bool> running{true};
  std::atomic<int> next;
  std::thread worker;
};

/// "0", "1", ... "n-1".
std::vector<std::string> sequence(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back(std::to_string(i));
  return out;
}

/// Where `got` first differs from `want` (empty when equal), for a readable failure.
std::string difference(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    if (got[i] != want[i])
      return "first difference at " + std::to_string(i) + ": got " + got[i] + ", want " + want[i];
  if (got.size() != want.size())
    return "got " + std::to_string(got.size()) + " messages, want " + std::to_string(want.size());
  return {};
}

} // namespace

TEST_CASE("publishes accepted while nats.c reconnects and then gives up all arrive in order "
          "after the supervisor restart",
          "[fate][faults]") {
  nats_server server;
  {
    raw_reader setup{server.url()};
    REQUIRE(add_stream(setup.js, "FATE", "fate.>") == NATS_OK);
  }
  auto s = fast_settings(server.url());
  s.nats.max_reconnect = 3; // nats.c gives up after about 300 ms
  s.nats.reconnect_wait = 100ms;
  s.policy.base_delay = 200ms;
  s.policy.max_attempts = 50;
  s.request_timeout = 30s;
  service_fixture f{s};
  // Before the outage: written and stored (a graceful stop keeps the stream's file store whole).
  constexpr int before = 200;
  for (int i = 0; i < before; ++i)
    REQUIRE_FALSE(f.svc->publish(outgoing{"fate.x", std::to_string(i), {}}));
  {
    raw_reader r{server.url()};
    REQUIRE(eventually([&] { return r.count("FATE") == before; }));
  }
  server.stop();
  REQUIRE(f.await_state(connection_state::reconnecting));
  // Steady publishing through nats.c's reconnect window, its give-up, the restart and after.
  steady_publisher pub{f.sys, f.svc->api(), "fate.x", before};
  REQUIRE(f.await_state(connection_state::restarting));
  auto at_give_up = pub.next.load();
  REQUIRE(eventually([&] { return pub.next.load() >= at_give_up + 200; }));
  server.start();
  REQUIRE(f.await_state(connection_state::connected));
  auto at_up = pub.next.load();
  REQUIRE(eventually([&] { return pub.next.load() >= at_up + 200; }));
  pub.stop();
  int total = pub.next.load();
  INFO("published " << total << ": " << before << " before the outage, " << at_give_up - before
                    << " while nats.c reconnected, " << at_up - at_give_up
                    << " while the supervisor restarted, " << total - at_up << " after");
  raw_reader r{server.url()};
  eventually([&] { return r.count("FATE") >= static_cast<uint64_t>(total); });
  auto got = r.payloads("FATE");
  INFO("missing: " << total - static_cast<int>(got.size()));
  CHECK(difference(got, sequence(total)) == "");
}
