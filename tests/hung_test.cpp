// Hung servers: a nats-server stopped with SIGSTOP still completes TCP handshakes in the kernel
// but answers nothing. nats.c notices it only through unanswered PINGs, and then holds the
// connection's lock for whole reconnect attempts (each waits connection_timeout for INFO). These
// tests check that the default settings notice it quickly and that every deadline natsvisor
// promises holds meanwhile.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <thread>

#include "nats_server.hpp"
#include "service_fixture.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

long long ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t).count();
}

double precise_ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// Resumes the server when the test ends, however it ends, before the service closes its
// connection: closing waits for nats.c's reconnect attempt, which a paused server prolongs.
struct resume_at_exit {
  nats_server& server;
  ~resume_at_exit() { server.resume(); }
};

server_options without_jetstream() {
  server_options o;
  o.jetstream = false;
  return o;
}

// Defaults, except the log level (tests stay quiet).
settings default_settings(const std::string& url) {
  settings s;
  s.nats_url = url;
  s.log_level = "warn";
  return s;
}

// Defaults, but nats.c starts its reconnect attempt (which waits up to connection_timeout, 10 s,
// for a hung server's INFO while holding the connection's lock) right after the disconnect.
settings quick_reconnect_settings(const std::string& url) {
  auto s = default_settings(url);
  s.nats.reconnect_wait = 100ms;
  return s;
}

void require_healthy(service_fixture& f) {
  auto h = f.svc->health_check();
  REQUIRE(h);
  REQUIRE(h->healthy);
}

// Pauses the server and returns how long until the service reported the connection
// reconnecting (printed as `what`), or nothing within 10 s.
std::optional<long long> pause_until_noticed(nats_server& server, service_fixture& f,
                                             const char* what) {
  auto paused_at = clock_type::now();
  server.pause();
  auto noticed = f.await_state(connection_state::reconnecting, 10s);
  auto took = ms_since(paused_at);
  std::printf("[hung] %s: hung server noticed after %lld ms\n", what, took);
  return noticed ? std::optional<long long>{took} : std::nullopt;
}

// Publishes 1 MB batches on the message path from a thread until destroyed.
struct flood {
  explicit flood(connection_service& svc) {
    packed_batch batch;
    batch.subject = "hung.flood";
    std::string payload(10 * 1024, 'x');
    for (int i = 0; i < 100; ++i)
      batch.add(payload);
    thread = std::thread{[this, &svc, batch] {
      while (!stop) {
        auto t = clock_type::now();
        if (svc.publish_batch(batch))
          ++batches;
        slowest = std::max(slowest.load(), ms_since(t));
      }
    }};
  }
  ~flood() {
    stop = true;
    thread.join();
  }
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::atomic<long long> slowest{0}; ///< the longest publish_batch call, in ms
  std::thread thread;
};

} // namespace

TEST_CASE("a hung server is noticed within 2.5 s with the default settings", "[hung]") {
  nats_server server{without_jetstream()};
  service_fixture f{default_settings(server.url())};
  resume_at_exit guard{server};
  require_healthy(f);
  auto took = pause_until_noticed(server, f, "default settings");
  REQUIRE(took);
  CHECK(*took < 2500);
}

TEST_CASE("while a server hangs requests, JetStream publishes, health checks, leases and status "
          "keep their deadlines",
          "[hung]") {
  nats_server server{without_jetstream()};
  service_fixture f{quick_reconnect_settings(server.url())};
  resume_at_exit guard{server};
  require_healthy(f);
  server.pause();
  REQUIRE(f.await_state(connection_state::reconnecting, 10s));

  double worst = -1e9; // the largest overrun of a deadline, in ms
  auto measure = [&](const char* what, double deadline_ms, auto call) {
    auto t = clock_type::now();
    call();
    auto took = precise_ms_since(t);
    worst = std::max(worst, took - deadline_ms);
    std::printf("[hung] %s: answered after %.1f ms (deadline %.0f ms)\n", what, took, deadline_ms);
    return took;
  };
  // Twice each: the second round runs well inside nats.c's reconnect attempt.
  for (int round = 0; round < 2; ++round) {
    CHECK(measure("request", 2000, [&] {
      auto r = f.svc->request({"hung.request", "x", {}}, 2s);
      CHECK_FALSE(r);
    }) < 3000);
    CHECK(measure("js_publish", 2000, [&] {
      auto r = f.svc->js_publish({"hung.js", "x", {}}, 2s);
      CHECK_FALSE(r);
    }) < 3000);
    CHECK(measure("health_check", 2000, [&] {
      auto r = f.svc->health_check();
      REQUIRE(r);
      CHECK_FALSE(r->healthy);
    }) < 3000);
    CHECK(measure("status", 100, [&] { CHECK(f.svc->status()); }) < 1000);
    CHECK(measure("lease", 1000, [&] { (void) f.svc->lease({}, 1s); }) < 2000);
  }
  std::printf("[hung] largest deadline overrun while the server hangs: %.1f ms\n", worst);
}

TEST_CASE("a hung server of a list fails over to the next server", "[hung]") {
  nats_server a{without_jetstream()};
  nats_server b{without_jetstream()};
  auto list = a.url() + "," + b.url();
  service_fixture f{default_settings(list)};
  resume_at_exit guard{a};
  require_healthy(f);
  REQUIRE(eventually([&] { return a.connection_count() == 1; }));
  CHECK(b.connection_count() == 0);
  auto paused_at = clock_type::now();
  a.pause();
  REQUIRE(f.await_state(connection_state::reconnecting, 10s));
  auto back = f.await_state(connection_state::connected, 10s);
  auto took = ms_since(paused_at);
  std::printf("[hung] failover to the second server after %lld ms\n", took);
  REQUIRE(back);
  CHECK(back->generation == 1); // nats.c moved the connection: no restart
  CHECK(took < 3000);
  CHECK(eventually([&] { return b.connection_count() == 1; }));
  auto after = f.svc->health_check();
  REQUIRE(after);
  CHECK(after->healthy);
}

TEST_CASE("a request made while nats.c reconnects waits in the connection actor and is sent once "
          "the server is back",
          "[hung]") {
  nats_server server{without_jetstream()};
  service_fixture f{quick_reconnect_settings(server.url())};
  auto svc = f.svc->api();
  // Subscribed on the same connection as the request: nats.c sends the SUB again before
  // anything else after the reconnect, so the responder is there when the request arrives.
  auto responder = f.sys.spawn([svc](caf::event_based_actor* self) -> caf::behavior {
    return {[self, svc](const nats_message& m) {
      publish(self, svc, outgoing{m.reply, "pong:" + m.payload, {}});
    }};
  });
  REQUIRE(f.svc->subscribe("hung.echo", responder));
  auto echo = f.svc->request({"hung.echo", "before", {}}, 2s);
  REQUIRE(echo);
  REQUIRE(echo->payload == "pong:before");
  server.kill();
  REQUIRE(f.await_state(connection_state::reconnecting, 10s));
  caf::scoped_actor self{f.sys};
  // Sent before the server is back (starting it takes far longer than handing this on).
  auto pending = self->request(svc, 15s, req_atom_v, std::string{}, outgoing{"hung.echo", "held", {}},
                               caf::timespan{10s});
  server.start();
  std::optional<nats_message> reply;
  pending.receive([&](nats_message& m) { reply = std::move(m); },
                  [](caf::error& err) { FAIL_CHECK(to_string(err)); });
  REQUIRE(reply);
  CHECK(reply->payload == "pong:held");
  caf::anon_send_exit(responder, caf::exit_reason::user_shutdown);
}

TEST_CASE("a healthy server under a publish flood it also delivers is not taken for a hung one",
          "[hung]") {
  nats_server server{without_jetstream()};
  service_fixture f{default_settings(server.url())};
  require_healthy(f);
  // The server delivers the flood back to this connection, read while it is written: what a
  // too tight ping limit would take for a hang. So would nats.c 3.4.1's write deadline
  // (natsOptions_SetWriteDeadline): with it, single writes here waited the whole deadline (1.5 s,
  // 5 s) and dropped the connection in about half the runs, while without it no write took
  // more than 140 ms. That is why natsvisor sets none.
  std::atomic<long long> received{0};
  auto sink = f.sys.spawn([&received](caf::event_based_actor*) -> caf::behavior {
    return {[&received](const nats_message&) { ++received; }};
  });
  REQUIRE(f.svc->subscribe("hung.flood", sink));
  flood publishes{*f.svc};
  auto alarm = f.await_state(connection_state::reconnecting, 6s);
  CHECK_FALSE(alarm);
  std::printf("[hung] healthy flood: %d batches of 100 x 10 KB sent, %lld messages received, "
              "longest publish_batch call %lld ms\n",
              publishes.batches.load(), received.load(), publishes.slowest.load());
  CHECK(publishes.batches.load() > 0);
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
}
