#include <catch2/catch.hpp>

#include <atomic>
#include <future>

#include <csignal>

#include "nats_server.hpp"
#include "service_fixture.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

// Counts messages of a plain nats.c subscription (made on a natsvisor handle).
struct counter {
  std::atomic<int> received{0};
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<counter*>(closure)->received++;
    natsMsg_Destroy(msg);
  }
};

} // namespace

TEST_CASE("a server back within nats.c's window keeps the generation and the subscription",
          "[faults][supervisor]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.nats.max_reconnect = 100; // a long window: nats.c must recover on its own
  service_fixture f{s};
  auto h = f.svc->get_connection();
  REQUIRE(h);
  counter c;
  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_Subscribe(&sub, h->get(), "keep.>", counter::on_msg, &c) == NATS_OK);
  REQUIRE(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
  server.kill();
  REQUIRE(f.await_state(connection_state::reconnecting));
  server.start();
  auto back = f.await_state(connection_state::connected);
  REQUIRE(back);
  CHECK(back->generation == 1);
  REQUIRE(natsConnection_PublishString(h->get(), "keep.after", "x") == NATS_OK);
  REQUIRE(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
  CHECK(eventually([&] { return c.received.load() == 1; }));
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->generation == 1);
  CHECK(st->restarts == 0);
  CHECK(st->reconnects >= 1);
  auto same = f.svc->get_connection();
  REQUIRE(same);
  CHECK(same->get() == h->get());
  natsSubscription_Destroy(sub);
}

TEST_CASE("a server down past nats.c's window is restarted by the supervisor",
          "[faults][supervisor][jetstream]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.request_timeout = 10s;
  service_fixture f{s};
  auto h = f.svc->get_connection();
  auto js = f.svc->get_jetstream();
  REQUIRE(h);
  REQUIRE(js);
  server.kill();
  // nats.c gives up after max_reconnect attempts; the supervisor schedules a restart.
  auto restarting = f.await_state(connection_state::restarting);
  REQUIRE(restarting);
  CHECK(restarting->generation == 1);
  CHECK_THAT(restarting->detail, Catch::Contains("connection_closed"));
  CHECK(h->closed());
  // A request made during the outage is parked until the new connection is up.
  auto parked = std::async(std::launch::async, [&] { return f.svc->get_jetstream(); });
  REQUIRE(eventually([&] {
    auto st = f.status_of(server.url());
    return st && st->parked >= 1;
  }));
  server.start();
  auto up = f.await_state(connection_state::connected);
  REQUIRE(up);
  CHECK(up->generation >= 2);
  auto fresh_js = parked.get();
  REQUIRE(fresh_js);
  CHECK(fresh_js->generation() == up->generation);
  CHECK(fresh_js->get() != nullptr);
  CHECK_FALSE(fresh_js->closed());
  // The re-created JetStream context works on the new connection.
  CHECK(add_stream(fresh_js->get(), "AFTER", "after.>") == NATS_OK);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->restarts >= 1);
  CHECK(st->generation == up->generation);
  CHECK(eventually([&] { return server.connection_count() == 1; }));
}

TEST_CASE("restart delays follow the configured backoff", "[faults][supervisor]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.policy.base_delay = 300ms;
  s.policy.multiplier = 2.0;
  s.policy.max_delay = 5s;
  s.policy.max_attempts = 3;
  service_fixture f{s};
  REQUIRE(f.svc->get_connection());
  server.kill();
  // Each restart starts a connection actor ("connecting") after its delay; measure the gaps
  // between the failure ("restarting") and the next start.
  // The events carry the supervisor's own time, so a busy test thread cannot skew the gaps.
  std::vector<caf::timespan> gaps;
  for (int i = 0; i < 2; ++i) {
    auto failed = f.await_state(connection_state::restarting);
    REQUIRE(failed);
    auto started = f.await_state(connection_state::connecting);
    REQUIRE(started);
    gaps.push_back(started->at - failed->at);
  }
  REQUIRE(gaps.size() == 2);
  CHECK(gaps[0] >= 300ms);
  CHECK(gaps[0] < 300ms + 500ms);
  CHECK(gaps[1] >= 600ms);
  CHECK(gaps[1] < 600ms + 500ms);
}

TEST_CASE("a server that never comes back makes the supervisor give up on time",
          "[faults][supervisor]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.policy.max_attempts = 3;
  s.request_timeout = 20s;
  service_fixture f{s};
  REQUIRE(f.svc->get_connection());
  auto killed_at = std::chrono::steady_clock::now();
  server.kill();
  REQUIRE(f.await_state(connection_state::restarting));
  auto parked = std::async(std::launch::async, [&] { return f.svc->get_connection(); });
  auto gave_up = f.await_state(connection_state::gave_up, 20s);
  REQUIRE(gave_up);
  auto took = std::chrono::steady_clock::now() - killed_at;
  // The policy predicts: every delay (200 + 400 + 800 ms, no jitter) plus, for each of the
  // 4 connection actors, nats.c's window of max_reconnect x reconnect_wait.
  auto delays = s.policy.worst_case_total_delay();
  auto windows = 4 * (s.nats.max_reconnect + 1) * s.nats.reconnect_wait;
  CHECK(took >= delays);
  CHECK(took <= delays + windows + 2s);
  CHECK_THAT(gave_up->detail, Catch::Contains("3 restart attempts exhausted"));
  auto answer = parked.get();
  REQUIRE_FALSE(answer);
  CHECK(code_of(answer.error()) == errc::gave_up);
  auto later = f.svc->get_connection();
  REQUIRE_FALSE(later);
  CHECK(code_of(later.error()) == errc::gave_up);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->state == connection_state::gave_up);
  CHECK(st->restarts == 3);
  // Giving up is final until an explicit reset revives the URL.
  server.start();
  REQUIRE_FALSE(f.svc->reset());
  auto revived = f.svc->get_connection();
  REQUIRE(revived);
  CHECK(revived->generation() == 5);
}

TEST_CASE("a cluster URL fails over along its server list", "[faults][supervisor]") {
  nats_server a;
  nats_server b;
  auto s = fast_settings(a.url() + "," + b.url());
  s.nats.max_reconnect = 20;
  service_fixture f{s};
  auto h = f.svc->get_connection();
  REQUIRE(h);
  REQUIRE(eventually([&] { return a.connection_count() == 1; }));
  a.kill();
  REQUIRE(f.await_state(connection_state::reconnecting));
  auto back = f.await_state(connection_state::connected);
  REQUIRE(back);
  CHECK(back->generation == 1);
  CHECK(eventually([&] { return b.connection_count() == 1; }));
  CHECK(natsConnection_PublishString(h->get(), "x.y", "z") == NATS_OK);
  CHECK(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
}

TEST_CASE("with escalate_on_give_up the supervisor exits with gave_up", "[faults][supervisor]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.policy.max_attempts = 1;
  s.escalate_on_give_up = true;
  service_fixture f{s};
  REQUIRE(f.svc->get_connection());
  caf::scoped_actor observer{f.sys};
  observer->monitor(f.svc->api());
  server.kill();
  std::optional<caf::error> reason;
  observer->receive([&](const caf::down_msg& msg) { reason = msg.reason; },
                    caf::after(std::chrono::seconds(10)) >> [] { /* nop: checked below */ });
  REQUIRE(reason);
  CHECK(code_of(*reason) == errc::gave_up);
  auto after = f.svc->get_connection();
  REQUIRE_FALSE(after);
  CHECK(code_of(after.error()) == errc::service_stopped);
}

TEST_CASE("a server entering lame duck mode is reported to watchers", "[faults][supervisor]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  REQUIRE(f.svc->get_connection());
  REQUIRE(f.await_state(connection_state::connected));
  // SIGUSR2 puts nats-server into lame duck mode: it tells its clients, then closes them later.
  REQUIRE(::kill(server.pid(), SIGUSR2) == 0);
  std::optional<state_changed> ldm;
  REQUIRE(eventually([&] {
    auto ev = f.await_state(connection_state::connected, 200ms);
    if (ev && ev->detail.find("lame duck") != std::string::npos)
      ldm = ev;
    return ldm.has_value();
  }));
  CHECK(ldm->generation == 1);
}
