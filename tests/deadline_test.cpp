// A caller's timeout bounds the whole wait of a message-path request (request, js_publish),
// wherever it waits: parked in the supervisor while the URL's connection restarts, held in the
// connection actor while nats.c reconnects, handed back when nats.c gives up and parked again.
// Before, each of these started the caller's timeout afresh (the soak saw 2.4 s answers for 1 s
// requests and 4.2 s for 2 s JetStream publishes).

#include <catch2/catch.hpp>

#include <cstdio>
#include <future>
#include <optional>

#include "nats_server.hpp"
#include "service_fixture.hpp"
#include "throttle_proxy.hpp"

#include "api/requests.hpp"

#include "base/time.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// Scheduling slack on two loaded cores; the defect answers 500 ms or more past the deadline.
constexpr auto margin = 300ms;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// A fault schedule, not synchronisation: waits `d` on the actor system's own timeout.
void pace(caf::actor_system& sys, std::chrono::milliseconds d) {
  caf::scoped_actor pacer{sys};
  pacer->receive(caf::after(d) >> [] {});
}

struct answer {
  errc code = errc::none;
  double ms = 0; ///< after how long it was answered
};

// Starts a request with `timeout` on a thread; its answer (the error code, none for a reply)
// and how long it took.
std::future<answer> request_async(service_fixture& f, const std::string& subject,
                                  caf::timespan timeout, bool jetstream = false) {
  return std::async(std::launch::async, [&f, subject, timeout, jetstream] {
    auto t = clock_type::now();
    answer a;
    if (jetstream) {
      auto r = f.svc->js_publish({subject, "x", {}}, timeout);
      a.code = r ? errc::none : code_of(r.error());
    } else {
      auto r = f.svc->request({subject, "x", {}}, timeout);
      a.code = r ? errc::none : code_of(r.error());
    }
    a.ms = ms_since(t);
    return a;
  });
}

// A subscriber on the URL's own message path that never replies: the supervisor subscribes it
// again on every new connection before it serves what was parked, so a request always finds a
// responder and ends only by its deadline.
caf::actor silent_responder(service_fixture& f, const std::string& subject) {
  auto up = f.svc->health_check(); // connected first: the subscription is then confirmed
  REQUIRE(up);
  REQUIRE(up->healthy);
  auto a = f.sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const nats_message&) { /* never replies */ }};
  });
  REQUIRE(f.svc->subscribe(subject, a));
  return a;
}

void check_answer(const char* what, const answer& a, caf::timespan deadline) {
  std::printf("[deadline] %s: answered %s after %.0f ms (deadline %lld ms)\n", what,
              to_string(a.code), a.ms, static_cast<long long>(to_ms(deadline)));
  CHECK(a.code == errc::timeout);
  CHECK(a.ms < to_ms(deadline + margin));
}

// Starts the server again after `after` and waits until the URL's connection is back: a request
// made at `sent` with a 1 s timeout is then forwarded with what is left of it.
void back_before_the_deadline(nats_server& server, service_fixture& f,
                              clock_type::time_point sent, std::chrono::milliseconds after) {
  pace(f.sys, after);
  server.start();
  REQUIRE(f.await_state(connection_state::connected, 10s));
  std::printf("[deadline] the connection was back %.0f ms after the request\n", ms_since(sent));
}

} // namespace

TEST_CASE("a request parked while its URL restarts is answered by its own deadline when the "
          "server comes back meanwhile",
          "[deadline][faults]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto responder = silent_responder(f, "deadline.silent");
  server.kill();
  REQUIRE(f.await_state(connection_state::restarting, 10s)); // nats.c gave up: parked from now
  auto sent = clock_type::now();
  auto pending = request_async(f, "deadline.silent", 1s);
  back_before_the_deadline(server, f, sent, 300ms);
  check_answer("parked, then forwarded", pending.get(), 1s);
  caf::anon_send_exit(responder, caf::exit_reason::user_shutdown);
}

TEST_CASE("requests and JetStream publishes parked while the server stays down are answered by "
          "their own deadline, not request_timeout",
          "[deadline][faults]") {
  nats_server server;
  auto s = fast_settings(server.url());
  REQUIRE(s.request_timeout >= 5s); // parking alone may last that long
  service_fixture f{s};
  auto up = f.svc->health_check();
  REQUIRE(up);
  REQUIRE(up->healthy);
  server.kill();
  REQUIRE(f.await_state(connection_state::restarting, 10s));
  auto request = request_async(f, "deadline.down", 1s);
  auto js = request_async(f, "deadline.down.js", 1s, true);
  check_answer("request parked", request.get(), 1s);
  check_answer("js_publish parked", js.get(), 1s);
}

TEST_CASE("a request held while nats.c reconnects, then handed back when it gives up, is "
          "answered by its own deadline",
          "[deadline][faults]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto responder = silent_responder(f, "deadline.held");
  server.kill();
  REQUIRE(f.await_state(connection_state::reconnecting, 10s)); // held in the connection actor
  auto sent = clock_type::now();
  auto pending = request_async(f, "deadline.held", 1s);
  // nats.c gives up after max_reconnect (3) attempts 100 ms apart: the request goes back to the
  // supervisor, is parked, and the server is back before its deadline.
  REQUIRE(f.await_state(connection_state::restarting, 10s));
  back_before_the_deadline(server, f, sent, 200ms);
  check_answer("held, handed back, parked, forwarded", pending.get(), 1s);
  caf::anon_send_exit(responder, caf::exit_reason::user_shutdown);
}

// The connection actor cannot serve a request that waited in its mailbox behind writes blocked
// on a congested link: when nats.c loses the link it hands the request back (it never tried it).
// The time it waited there is the caller's too: before, it was handed back with the full
// timeout it had been given and parked for all of it again (answered after about 1 s + 3 s).
TEST_CASE("a request that waited in a blocked connection actor's mailbox and is handed back "
          "untried is answered by its caller's deadline",
          "[deadline][faults]") {
  server_options plain;
  plain.jetstream = false;
  nats_server srv{plain};
  auto s = fast_settings("");
  // The congested link must not look like a hung server: its PINGs queue behind the data.
  s.nats.ping_interval = 60s;
  s.nats.max_pings_out = 10;
  std::optional<service_fixture> f; // after the proxy: a write blocked on it fails at once
  std::optional<throttle_proxy> proxy;
  proxy.emplace(srv.port(), 64u << 10); // 64 KiB/s: the writes below block for minutes
  s.nats_url = proxy->url();
  f.emplace(s);
  REQUIRE(f->svc->get_connection());
  {
    // Far more than the loopback buffers take: the connection actor blocks in nats.c's write
    // with the rest (up to the URL's credit) still in its mailbox.
    caf::scoped_actor self{f->sys};
    auto sup = caf::actor_cast<caf::actor>(f->svc->api());
    const std::string payload(1024, 'x');
    for (int i = 0; i < 40000; ++i)
      natsvisor::publish(self.ptr(), sup, outgoing{"deadline.blocked", payload, {}});
  }
  auto sent = clock_type::now();
  auto pending = request_async(*f, "deadline.blocked.request", 3s); // behind the publishes
  pace(f->sys, 1000ms);
  std::printf("[deadline] the proxy forwarded %llu bytes; closing it %.0f ms after the request\n",
              static_cast<unsigned long long>(proxy->forwarded()), ms_since(sent));
  proxy.reset(); // the blocked write fails: nats.c reconnects (to nothing) and later gives up
  check_answer("waited in the connection actor, handed back untried", pending.get(), 3s);
}
