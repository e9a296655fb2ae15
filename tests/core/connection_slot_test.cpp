// Tests of the pure core connection_slot (supervisors/connection_slot.hpp): every transition driven
// by hand on a fixed time base, then thousands of random event sequences checked against a model
// of the outside world and of the restart policy. No clock is ever read.
#include "supervisors/connection_slot.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

using natsvisor::connection_slot;
using natsvisor::connection_state;
using natsvisor::errc;
using natsvisor::restart_policy;
using natsvisor::slot_input;
using natsvisor::slot_output;
using natsvisor::steady_time;
namespace ev = natsvisor::slot_event;
namespace act = natsvisor::slot_action;

namespace {

/// A fixed point in time: tests never read a clock.
const steady_time t0 = steady_time{} + std::chrono::hours(1000);

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

std::string show(connection_state s) {
  return natsvisor::to_string(s);
}

// errors.cpp (to_string) is not part of the pure core: the codes these tests use, by name.
std::string show(errc c) {
  switch (c) {
    case errc::none: return "none";
    case errc::connect_failed: return "connect_failed";
    case errc::connection_closed: return "connection_closed";
    case errc::timeout: return "timeout";
    case errc::gave_up: return "gave_up";
    case errc::invalid_url: return "invalid_url";
    case errc::invalid_config: return "invalid_config";
    case errc::auth_failed: return "auth_failed";
    case errc::tls_failed: return "tls_failed";
    default: return "code " + std::to_string(static_cast<int>(c));
  }
}

std::string show(caf::timespan d) {
  auto n = d.count();
  return n % 1'000'000 == 0 ? std::to_string(n / 1'000'000) + "ms" : std::to_string(n) + "ns";
}

std::string show(const slot_output& a) {
  return std::visit(overloaded{
                      [](const act::spawn& x) { return "spawn " + std::to_string(x.generation); },
                      [](const act::stop& x) { return "stop " + std::to_string(x.generation); },
                      [](const act::arm_restart& x) {
                        return "arm_restart " + std::to_string(x.generation) + " " + show(x.delay)
                               + " attempt " + std::to_string(x.attempt);
                      },
                      [](const act::notify& x) {
                        return "notify " + show(x.state)
                               + (x.detail.empty() ? "" : " (" + x.detail + ")");
                      },
                      [](const act::ready&) { return std::string{"ready"}; },
                      [](const act::gave_up& x) {
                        // The code only where it is not the plain gave_up.
                        auto code = x.code == errc::gave_up ? "" : show(x.code) + " ";
                        return "gave_up " + code + "(" + x.reason + ")";
                      },
                      [](const act::closed&) { return std::string{"closed"}; },
                      [](const act::replace& x) {
                        return "replace " + std::to_string(x.old) + " -> "
                               + std::to_string(x.next);
                      },
                      [](const act::move& x) { return "move " + std::to_string(x.generation); },
                      [](const act::switch_over& x) {
                        return "switch_over " + std::to_string(x.old) + " -> "
                               + std::to_string(x.next);
                      },
                      [](const act::take_over& x) {
                        return "take_over " + std::to_string(x.generation);
                      },
                    },
                    a);
}

/// The actions of one event, e.g. "spawn 1; notify connecting": exact and readable in a failure.
std::string show(const std::vector<slot_output>& actions) {
  std::string out;
  for (const auto& a : actions)
    out += (out.empty() ? "" : "; ") + show(a);
  return out;
}

/// The default policy without jitter, so that every delay is exact: base 2 s doubling to a cap
/// of 30 s, 5 attempts per episode, 20 restarts per 60 s, stable after 30 s.
restart_policy exact_policy() {
  restart_policy p;
  p.jitter = 0.0;
  return p;
}

/// A slot driven by hand. Every event helper returns the actions as show() spells them.
struct driven_slot {
  connection_slot slot;
  steady_time now = t0;

  explicit driven_slot(restart_policy p = exact_policy()) : slot(std::move(p)) {}

  std::string feed(const slot_input& e) { return show(slot.handle(e)); }
  std::string start() { return feed(ev::start{}); }
  std::string up(uint64_t g) { return feed(ev::child_up{g, now}); }
  std::string disconnect(uint64_t g) { return feed(ev::disconnected{g, now}); }
  std::string reconnect(uint64_t g) { return feed(ev::reconnected{g, now}); }
  std::string down(uint64_t g, const std::string& detail = "connection refused",
                   errc code = errc::connect_failed) {
    return feed(ev::child_down{g, code, detail, now, 0.5});
  }
  std::string timer(uint64_t g) { return feed(ev::timer{g}); }
  std::string close() { return feed(ev::close{}); }
  std::string reset() { return feed(ev::reset{}); }
  std::string lame_duck(uint64_t g) { return feed(ev::lame_duck{g}); }
  std::string moved(uint64_t g) { return feed(ev::moved{g, now}); }
  void wait(caf::timespan d) { now += d; }
};

/// The actions of a transient failure that restarts (generation `g`, attempt `n`, `ms` delay).
std::string restart_actions(uint64_t g, int n, int ms, const std::string& detail) {
  return "notify restarting (restart " + std::to_string(n) + " in " + std::to_string(ms)
         + " ms after: " + detail + "); arm_restart " + std::to_string(g) + " " + std::to_string(ms)
         + "ms attempt " + std::to_string(n);
}

std::string spawn_actions(uint64_t g) {
  return "spawn " + std::to_string(g) + "; notify connecting";
}

/// How many of the actions spelled in `actions` are exactly `name`.
int count_actions(const std::string& actions, const std::string& name) {
  int n = 0;
  std::istringstream in{actions};
  for (std::string a; std::getline(in >> std::ws, a, ';');)
    n += a == name;
  return n;
}

const std::string closed_actions = "notify closed (closed on request); closed";

/// Fails child `g` (transient), waits out the delay, fires the timer: child `g + 1` connects.
void fail_and_restart(driven_slot& s, uint64_t g, int attempt, int ms) {
  REQUIRE(s.down(g) == restart_actions(g, attempt, ms, "connection refused"));
  s.wait(std::chrono::milliseconds(ms));
  REQUIRE(s.timer(g) == spawn_actions(g + 1));
}

/// A slot in state `st` whose current generation is 2 (generation 1 failed once, so the episode
/// is at attempt 1). The child of generation 2 is alive in connecting, connected, reconnecting
/// and closing.
driven_slot slot_in(connection_state st) {
  driven_slot s;
  REQUIRE(s.start() == spawn_actions(1));
  fail_and_restart(s, 1, 1, 2000);
  switch (st) {
    case connection_state::connecting: break;
    case connection_state::connected: REQUIRE(s.up(2) == "notify connected; ready"); break;
    case connection_state::reconnecting:
      REQUIRE(s.up(2) == "notify connected; ready");
      REQUIRE(s.disconnect(2) == "notify reconnecting (disconnected; nats.c reconnects)");
      break;
    case connection_state::restarting:
      REQUIRE(s.down(2) == restart_actions(2, 2, 4000, "connection refused"));
      break;
    case connection_state::gave_up:
      REQUIRE(s.down(2, "bad url", errc::invalid_url)
              == "notify gave_up (permanent failure: bad url); "
                 "gave_up invalid_url (permanent failure: bad url)");
      break;
    case connection_state::closing: REQUIRE(s.close() == "notify closing; stop 2"); break;
    case connection_state::closed:
      REQUIRE(s.close() == "notify closing; stop 2");
      REQUIRE(s.down(2, "stopped") == closed_actions);
      break;
  }
  REQUIRE(s.slot.state() == st);
  REQUIRE(s.slot.generation() == 2);
  return s;
}

const connection_state all_states[] = {
  connection_state::closed,       connection_state::connecting, connection_state::connected,
  connection_state::reconnecting, connection_state::restarting, connection_state::gave_up,
  connection_state::closing,
};

bool has_live_child(connection_state st) {
  return st == connection_state::connecting || st == connection_state::connected
         || st == connection_state::reconnecting || st == connection_state::closing;
}

/// What an ignored event must leave alone.
struct observable {
  connection_state state;
  uint64_t generation;
  bool alive;
  bool reopen;
  int attempt;
  bool operator==(const observable& o) const {
    return state == o.state && generation == o.generation && alive == o.alive && reopen == o.reopen
           && attempt == o.attempt;
  }
};

observable observe(const connection_slot& s) {
  return {s.state(), s.generation(), s.child_alive(), s.reopen_pending(), s.history().attempt};
}

} // namespace

// -- by hand: starting and running --------------------------------------------------------------

TEST_CASE("a new slot is closed, without a child and without history", "[slot]") {
  driven_slot s;
  CHECK(s.slot.state() == connection_state::closed);
  CHECK(s.slot.generation() == 0);
  CHECK_FALSE(s.slot.child_alive());
  CHECK_FALSE(s.slot.usable());
  CHECK(s.slot.restarts() == 0);
  CHECK(s.slot.last_error().empty());
  CHECK(s.slot.give_up_reason().empty());
  CHECK_FALSE(s.slot.reopen_pending());
  CHECK(s.slot.history().attempt == 0);
}

TEST_CASE("the first start spawns generation 1 and reports connecting", "[slot]") {
  driven_slot s;
  CHECK(s.start() == "spawn 1; notify connecting");
  CHECK(s.slot.state() == connection_state::connecting);
  CHECK(s.slot.generation() == 1);
  CHECK(s.slot.child_alive());
  CHECK_FALSE(s.slot.usable());
  CHECK(s.slot.restarts() == 0);
}

TEST_CASE("start does nothing unless the slot is closed or closing", "[slot]") {
  for (auto st : all_states) {
    if (st == connection_state::closed || st == connection_state::closing)
      continue;
    INFO("state " << show(st));
    auto s = slot_in(st);
    auto before = observe(s.slot);
    CHECK(s.start().empty());
    CHECK(observe(s.slot) == before);
  }
}

TEST_CASE("child_up makes the slot connected, usable and ready", "[slot]") {
  driven_slot s;
  s.start();
  CHECK(s.up(1) == "notify connected; ready");
  CHECK(s.slot.state() == connection_state::connected);
  CHECK(s.slot.usable());
  CHECK(s.slot.history().up_since == s.now);
}

TEST_CASE("a disconnect reports reconnecting and stays usable, a reconnect is ready again",
          "[slot]") {
  driven_slot s;
  s.start();
  s.up(1);
  s.wait(5s);
  CHECK(s.disconnect(1) == "notify reconnecting (disconnected; nats.c reconnects)");
  CHECK(s.slot.state() == connection_state::reconnecting);
  CHECK(s.slot.usable());
  CHECK(s.slot.child_alive());
  CHECK_FALSE(s.slot.history().up_since.has_value());
  s.wait(1s);
  CHECK(s.reconnect(1) == "notify connected (reconnected by nats.c); ready");
  CHECK(s.slot.state() == connection_state::connected);
  CHECK(s.slot.history().up_since == s.now);
  CHECK(s.slot.generation() == 1);
  CHECK(s.slot.restarts() == 0);
}

// -- by hand: failures, backoff and giving up ---------------------------------------------------

TEST_CASE("transient failures restart with exact backoff delays, then give up after "
          "max_attempts with the reason",
          "[slot]") {
  driven_slot s;
  s.start();
  const int delays_ms[] = {2000, 4000, 8000, 16000, 30000};
  for (int attempt = 1; attempt <= 5; ++attempt) {
    INFO("attempt " << attempt);
    auto g = static_cast<uint64_t>(attempt);
    CHECK(s.down(g) == restart_actions(g, attempt, delays_ms[attempt - 1], "connection refused"));
    CHECK(s.slot.state() == connection_state::restarting);
    CHECK_FALSE(s.slot.child_alive());
    CHECK_FALSE(s.slot.usable());
    CHECK(s.slot.history().attempt == attempt);
    s.wait(std::chrono::milliseconds(delays_ms[attempt - 1]));
    CHECK(s.timer(g) == spawn_actions(g + 1));
    CHECK(s.slot.restarts() == g);
  }
  CHECK(s.down(6)
        == "notify gave_up (5 restart attempts exhausted); "
           "gave_up (5 restart attempts exhausted; last error: connection refused)");
  CHECK(s.slot.state() == connection_state::gave_up);
  CHECK_FALSE(s.slot.child_alive());
  CHECK_FALSE(s.slot.usable());
  CHECK(s.slot.give_up_reason() == "5 restart attempts exhausted");
  CHECK(s.slot.last_error() == "connection refused");
  CHECK(s.slot.restarts() == 5);
  // Only reset revives a slot that gave up.
  CHECK(s.start().empty());
  CHECK(s.timer(6).empty());
  CHECK(s.slot.state() == connection_state::gave_up);
}

TEST_CASE("a failure restarts from connecting, connected and reconnecting alike", "[slot]") {
  for (auto st : {connection_state::connecting, connection_state::connected,
                  connection_state::reconnecting}) {
    INFO("state " << show(st));
    auto s = slot_in(st);
    s.wait(1s);
    CHECK(s.down(2, "connection lost") == restart_actions(2, 2, 4000, "connection lost"));
    CHECK(s.slot.last_error() == "connection lost");
    s.wait(4s);
    CHECK(s.timer(2) == spawn_actions(3));
    CHECK(s.slot.restarts() == 2);
  }
}

TEST_CASE("the last error is kept after the slot recovers", "[slot]") {
  auto s = slot_in(connection_state::connecting);
  CHECK(s.up(2) == "notify connected; ready");
  CHECK(s.slot.last_error() == "connection refused");
}

TEST_CASE("a permanent failure gives up at once with its detail", "[slot]") {
  for (bool was_up : {false, true}) {
    INFO((was_up ? "connected for an hour" : "connecting"));
    driven_slot s;
    s.start();
    if (was_up) {
      s.up(1);
      s.wait(1h);
    }
    CHECK(s.down(1, "authorization violation", errc::auth_failed)
          == "notify gave_up (permanent failure: authorization violation); gave_up auth_failed "
             "(permanent failure: authorization violation)");
    CHECK(s.slot.state() == connection_state::gave_up);
    CHECK(s.slot.give_up_reason() == "permanent failure: authorization violation");
    CHECK(s.slot.restarts() == 0);
  }
}

TEST_CASE("refused credentials or TLS give up at once and hand their own code to the callers",
          "[slot]") {
  for (auto code : {errc::auth_failed, errc::tls_failed, errc::invalid_config}) {
    INFO(show(code));
    driven_slot s;
    s.start();
    auto out = s.slot.handle(ev::child_down{1, code, "Authorization Violation", s.now, 0.5});
    REQUIRE(out.size() == 2);
    auto* g = std::get_if<act::gave_up>(&out[1]);
    REQUIRE(g);
    CHECK(g->code == code);
    CHECK(g->reason == "permanent failure: Authorization Violation");
    CHECK(s.slot.state() == connection_state::gave_up);
    CHECK(s.slot.restarts() == 0);
    // Nothing is armed: the slot stays given up until a reset, however long one waits.
    s.wait(1h);
    CHECK(s.timer(1).empty());
    CHECK(s.start().empty());
  }
  // A give-up after the limits stays the plain gave_up, with the last error in its reason.
  auto p = exact_policy();
  p.max_attempts = 0;
  driven_slot s{p};
  s.start();
  auto out = s.slot.handle(ev::child_down{1, errc::connect_failed, "refused", s.now, 0.5});
  REQUIRE(out.size() == 2);
  CHECK(std::get<act::gave_up>(out[1]).code == errc::gave_up);
}

TEST_CASE("max_restarts within the window gives up although the episodes are short", "[slot]") {
  auto p = exact_policy();
  p.max_restarts = 2;
  p.stable_period = 5s;
  driven_slot s{p};
  s.start();
  fail_and_restart(s, 1, 1, 2000);
  s.up(2);
  s.wait(6s); // stable: the next failure is attempt 1 again, but the window remembers
  CHECK(s.down(2, "connection lost") == restart_actions(2, 1, 2000, "connection lost"));
  s.wait(2s);
  s.timer(2);
  s.up(3);
  s.wait(6s);
  CHECK(s.down(3, "connection lost")
        == "notify gave_up (2 restarts within 60s); "
           "gave_up (2 restarts within 60s; last error: connection lost)");
  CHECK(s.slot.give_up_reason() == "2 restarts within 60s");
}

// -- by hand: the stable period -----------------------------------------------------------------

TEST_CASE("a connection up longer than stable_period starts its next failure at attempt 1",
          "[slot][regression]") {
  // An episode at attempt 2 (generations 1 and 2 failed), then generation 3 comes up.
  driven_slot s;
  s.start();
  fail_and_restart(s, 1, 1, 2000);
  fail_and_restart(s, 2, 2, 4000);
  REQUIRE(s.up(3) == "notify connected; ready");
  // nats.c reports the disconnect first and may then try for minutes before giving up: the
  // good period must be credited at the disconnect, not measured at the failure.
  auto disconnect_then_fail_later = [&](caf::timespan up_for) {
    s.wait(up_for);
    REQUIRE(s.disconnect(3) == "notify reconnecting (disconnected; nats.c reconnects)");
    s.wait(5min);
    return s.down(3, "connection lost");
  };
  SECTION("up for more than stable_period") {
    CHECK(disconnect_then_fail_later(31s) == restart_actions(3, 1, 2000, "connection lost"));
    CHECK(s.slot.history().attempt == 1);
  }
  SECTION("up for exactly stable_period") {
    CHECK(disconnect_then_fail_later(30s) == restart_actions(3, 1, 2000, "connection lost"));
  }
  SECTION("up for less than stable_period continues the episode") {
    CHECK(disconnect_then_fail_later(30s - 1ns) == restart_actions(3, 3, 8000, "connection lost"));
    CHECK(s.slot.history().attempt == 3);
  }
  SECTION("a stable period after a reconnect counts as well") {
    s.wait(10s);
    s.disconnect(3);
    s.wait(1s);
    REQUIRE(s.reconnect(3) == "notify connected (reconnected by nats.c); ready");
    CHECK(disconnect_then_fail_later(31s) == restart_actions(3, 1, 2000, "connection lost"));
  }
  SECTION("two short up periods do not add up to a stable one") {
    s.wait(20s);
    s.disconnect(3);
    s.wait(1s);
    s.reconnect(3);
    CHECK(disconnect_then_fail_later(20s) == restart_actions(3, 3, 8000, "connection lost"));
  }
  SECTION("a crash without a disconnect is credited at the failure") {
    s.wait(31s);
    CHECK(s.down(3, "crashed") == restart_actions(3, 1, 2000, "crashed"));
  }
  SECTION("a crash before stable_period continues the episode") {
    s.wait(29s);
    CHECK(s.down(3, "crashed") == restart_actions(3, 3, 8000, "crashed"));
  }
}

TEST_CASE("a close ends the up period: time spent closed is not credited as stable",
          "[slot][regression]") {
  // Before the fix, the close left up_since set, so the first failure after a reopen measured
  // the time since the old connection came up, closed time included, and reset the episode.
  driven_slot s;
  s.start();
  fail_and_restart(s, 1, 1, 2000);
  fail_and_restart(s, 2, 2, 4000);
  s.up(3);
  auto close_reopen_fail = [&](caf::timespan up_for) {
    s.wait(up_for);
    REQUIRE(s.close() == "notify closing; stop 3");
    REQUIRE(s.down(3, "stopped") == closed_actions);
    CHECK_FALSE(s.slot.history().up_since.has_value());
    s.wait(10min);
    REQUIRE(s.start() == spawn_actions(4));
    return s.down(4);
  };
  SECTION("up for less than stable_period: the episode goes on after the reopen") {
    CHECK(close_reopen_fail(5s) == restart_actions(4, 3, 8000, "connection refused"));
  }
  SECTION("up for stable_period before the close: a new episode") {
    CHECK(close_reopen_fail(30s) == restart_actions(4, 1, 2000, "connection refused"));
  }
}

// -- by hand: stale and misplaced events --------------------------------------------------------

TEST_CASE("events of stale generations are ignored in every state", "[slot]") {
  for (auto st : all_states) {
    auto s = slot_in(st);
    auto before = observe(s.slot);
    std::vector<uint64_t> stale{0, 1, 3, 100};
    if (!has_live_child(st))
      stale.push_back(2); // generation 2 is dead here
    for (auto g : stale) {
      INFO("state " << show(st) << ", generation " << g);
      s.wait(1min);
      CHECK(s.up(g).empty());
      CHECK(s.disconnect(g).empty());
      CHECK(s.reconnect(g).empty());
      CHECK(s.down(g).empty());
      CHECK(s.down(g, "auth", errc::auth_failed).empty());
      if (g != 2) // timer 2 is the live restart timer in restarting
        CHECK(s.timer(g).empty());
      CHECK(observe(s.slot) == before);
    }
  }
}

TEST_CASE("events of the current generation that do not fit the state are ignored", "[slot]") {
  for (auto st : all_states) {
    if (st == connection_state::closed)
      continue; // generation 2 is dead there: covered by the stale test
    auto s = slot_in(st);
    auto before = observe(s.slot);
    INFO("state " << show(st));
    if (st != connection_state::connecting)
      CHECK(s.up(2).empty());
    if (st != connection_state::connected)
      CHECK(s.disconnect(2).empty());
    if (st != connection_state::reconnecting)
      CHECK(s.reconnect(2).empty());
    if (st != connection_state::restarting)
      CHECK(s.timer(2).empty());
    CHECK(observe(s.slot) == before);
  }
}

TEST_CASE("a restart timer after a close is ignored", "[slot]") {
  auto s = slot_in(connection_state::restarting);
  CHECK(s.close() == closed_actions);
  CHECK(s.timer(2).empty());
  CHECK(s.slot.state() == connection_state::closed);
  CHECK_FALSE(s.slot.child_alive());
  SECTION("also once a new child runs and after it failed in turn") {
    CHECK(s.start() == spawn_actions(3));
    CHECK(s.timer(2).empty());
    CHECK(s.down(3) == restart_actions(3, 3, 8000, "connection refused"));
    CHECK(s.timer(2).empty());
    CHECK(s.slot.state() == connection_state::restarting);
    CHECK(s.timer(3) == spawn_actions(4));
  }
}

TEST_CASE("a restart timer fires once", "[slot]") {
  auto s = slot_in(connection_state::restarting);
  CHECK(s.timer(2) == spawn_actions(3));
  CHECK(s.timer(2).empty());
  CHECK(s.slot.generation() == 3);
}

// -- by hand: closing ---------------------------------------------------------------------------

TEST_CASE("a close in any state ends in closed exactly once", "[slot]") {
  for (auto st : all_states) {
    INFO("state " << show(st));
    auto s = slot_in(st);
    std::string all;
    switch (st) {
      case connection_state::closed:
        CHECK((all = s.close()) == "closed"); // answered at once, nothing to notify
        break;
      case connection_state::restarting:
      case connection_state::gave_up:
        CHECK((all = s.close()) == closed_actions); // no child to wait for
        break;
      case connection_state::closing:
        CHECK((all = s.close()).empty()); // joins the close in progress
        CHECK((all = s.down(2, "stopped")) == closed_actions);
        break;
      default:
        CHECK((all = s.close()) == "notify closing; stop 2");
        CHECK(s.slot.state() == connection_state::closing);
        CHECK(s.slot.child_alive());
        CHECK_FALSE(s.slot.usable());
        CHECK(s.close().empty());
        s.wait(1s);
        all += "; " + s.down(2, "stopped");
        CHECK(all == "notify closing; stop 2; " + closed_actions);
        break;
    }
    CHECK(count_actions(all, "closed") == 1);
    CHECK(s.slot.state() == connection_state::closed);
    CHECK_FALSE(s.slot.child_alive());
    CHECK(s.slot.give_up_reason().empty());
    CHECK(s.timer(2).empty());
    CHECK(s.down(2).empty());
  }
}

TEST_CASE("a child that fails while closing still just closes", "[slot]") {
  auto s = slot_in(connection_state::connected);
  s.close();
  CHECK(s.down(2, "authorization violation", errc::auth_failed) == closed_actions);
  CHECK(s.slot.last_error() == "connection refused"); // a stopping child's error is not kept
  CHECK(s.slot.give_up_reason().empty());
  CHECK(s.slot.history().attempt == 1);
}

TEST_CASE("a start while closing reopens after the close completed", "[slot]") {
  for (auto st : {connection_state::connecting, connection_state::connected,
                  connection_state::reconnecting}) {
    INFO("state " << show(st));
    auto s = slot_in(st);
    CHECK(s.close() == "notify closing; stop 2");
    CHECK(s.start().empty());
    CHECK(s.slot.reopen_pending());
    CHECK(s.start().empty()); // twice: still one fresh child
    CHECK(s.slot.state() == connection_state::closing);
    CHECK(s.down(2, "stopped") == closed_actions + "; " + spawn_actions(3));
    CHECK_FALSE(s.slot.reopen_pending());
    CHECK(s.slot.state() == connection_state::connecting);
    CHECK(s.slot.child_alive());
    CHECK(s.up(3) == "notify connected; ready");
  }
}

TEST_CASE("a close while closing cancels the pending reopen", "[slot]") {
  auto s = slot_in(connection_state::connected);
  s.close();
  s.start();
  REQUIRE(s.slot.reopen_pending());
  CHECK(s.close().empty());
  CHECK_FALSE(s.slot.reopen_pending());
  CHECK(s.down(2, "stopped") == closed_actions);
  CHECK(s.slot.state() == connection_state::closed);
  CHECK_FALSE(s.slot.child_alive());
  SECTION("and a start after that reopens again") {
    s.start();
    CHECK(s.slot.generation() == 3);
    CHECK(s.slot.state() == connection_state::connecting);
  }
}

TEST_CASE("a closed slot starts again with a fresh generation", "[slot]") {
  auto s = slot_in(connection_state::closed);
  CHECK(s.start() == spawn_actions(3));
  CHECK(s.up(3) == "notify connected; ready");
}

// -- by hand: reset -----------------------------------------------------------------------------

TEST_CASE("reset revives a slot that gave up and clears its history", "[slot]") {
  driven_slot s;
  s.start();
  fail_and_restart(s, 1, 1, 2000);
  s.down(2, "bad credentials", errc::auth_failed);
  REQUIRE(s.slot.state() == connection_state::gave_up);
  CHECK(s.reset() == spawn_actions(3));
  CHECK(s.slot.give_up_reason().empty());
  CHECK(s.slot.history().attempt == 0);
  CHECK(s.slot.history().restarts.empty());
  CHECK(s.slot.child_alive());
  CHECK(s.down(3) == restart_actions(3, 1, 2000, "connection refused"));
}

TEST_CASE("reset in other states only clears the history", "[slot]") {
  for (auto st : all_states) {
    if (st == connection_state::gave_up)
      continue;
    INFO("state " << show(st));
    auto s = slot_in(st);
    auto before = observe(s.slot);
    CHECK(s.reset().empty());
    before.attempt = 0;
    CHECK(observe(s.slot) == before);
    CHECK(s.slot.history().restarts.empty());
  }
  SECTION("a restarting slot then restarts its next failure at attempt 1") {
    auto s = slot_in(connection_state::restarting);
    s.reset();
    CHECK(s.timer(2) == spawn_actions(3));
    CHECK(s.down(3) == restart_actions(3, 1, 2000, "connection refused"));
  }
}

// -- by hand: make before break (lame duck) -------------------------------------------------------

TEST_CASE("lame duck: the replacement is prepared beside the serving child, gets the "
          "subscriptions, serves, and the old child is retired",
          "[slot][lame-duck]") {
  auto s = slot_in(connection_state::connected);
  CHECK(s.lame_duck(2) == "replace 2 -> 3");
  CHECK(s.slot.generation() == 2); // the old child serves meanwhile
  CHECK(s.slot.usable());
  CHECK(s.slot.live_children() == 2);
  CHECK(s.slot.next_generation() == 3);
  CHECK(s.up(3) == "move 3");
  CHECK(s.slot.generation() == 2);
  CHECK(s.moved(3) == "switch_over 2 -> 3; ready");
  CHECK(s.slot.generation() == 3);
  CHECK(s.slot.state() == connection_state::connected);
  CHECK(s.slot.retiring_generation() == 2);
  CHECK(s.slot.live_children() == 2);
  // The retired child's own news changes nothing; its end only frees its place.
  CHECK(s.disconnect(2).empty());
  CHECK(s.down(2, "stopped").empty());
  CHECK(s.slot.live_children() == 1);
  CHECK(s.slot.state() == connection_state::connected);
  // The next lame duck replaces the new child the same way.
  CHECK(s.lame_duck(3) == "replace 3 -> 4");
}

TEST_CASE("a replacement of a reconnecting child reports connected at the switch-over",
          "[slot][lame-duck]") {
  auto s = slot_in(connection_state::reconnecting);
  CHECK(s.lame_duck(2) == "replace 2 -> 3");
  CHECK(s.up(3) == "move 3");
  CHECK(s.moved(3) == "switch_over 2 -> 3; notify connected (generation 3 replaced 2); ready");
}

TEST_CASE("a replacement that fails leaves the old child serving and its generation unused",
          "[slot][lame-duck]") {
  auto s = slot_in(connection_state::connected);
  CHECK(s.lame_duck(2) == "replace 2 -> 3");
  CHECK(s.down(3, "connection refused").empty()); // no restart: the old child still serves
  CHECK(s.slot.state() == connection_state::connected);
  CHECK(s.slot.generation() == 2);
  CHECK(s.slot.live_children() == 1);
  CHECK(s.slot.history().attempt == 1); // unchanged
  CHECK(s.lame_duck(2) == "replace 2 -> 4");
  CHECK(s.slot.last_spawned() == 4);
}

TEST_CASE("the serving child failing during a replacement hands the slot to the replacement",
          "[slot][lame-duck]") {
  SECTION("the replacement was up: connected once its subscriptions moved") {
    auto s = slot_in(connection_state::connected);
    CHECK(s.lame_duck(2) == "replace 2 -> 3");
    CHECK(s.up(3) == "move 3");
    CHECK(s.down(2, "connection lost")
          == "take_over 3; notify connecting (replacement generation 3 takes over after: "
             "connection lost)");
    CHECK_FALSE(s.slot.usable());
    CHECK(s.moved(3) == "notify connected; ready");
  }
  SECTION("the replacement was still connecting: connected when it is up") {
    auto s = slot_in(connection_state::connected);
    CHECK(s.lame_duck(2) == "replace 2 -> 3");
    CHECK(s.down(2, "connection lost")
          == "take_over 3; notify connecting (replacement generation 3 takes over after: "
             "connection lost)");
    CHECK(s.up(3) == "notify connected; ready");
  }
}

TEST_CASE("a close during a replacement stops both children and completes after both ended",
          "[slot][lame-duck]") {
  auto s = slot_in(connection_state::connected);
  CHECK(s.lame_duck(2) == "replace 2 -> 3");
  CHECK(s.close() == "notify closing; stop 2; stop 3");
  CHECK(s.down(2, "stopped").empty());
  CHECK(s.up(3).empty()); // too late to move anything
  CHECK(s.down(3, "stopped") == closed_actions);
  CHECK(s.slot.live_children() == 0);
}

// Seen in the rolling-restart test's neighbour: nats.c read the server's lame duck INFO before
// the child's up reached the supervisor, the notice was dropped, and the server closed the
// connection at the end of its grace period (a reconnect instead of make before break).
TEST_CASE("a lame duck notice that overtakes the child's first up is acted on once it is up",
          "[slot][lame-duck]") {
  SECTION("a fresh child") {
    auto s = slot_in(connection_state::connecting);
    CHECK(s.lame_duck(2).empty());
    CHECK(s.up(2) == "notify connected; ready; replace 2 -> 3");
    CHECK(s.up(3) == "move 3");
    CHECK(s.moved(3) == "switch_over 2 -> 3; ready");
  }
  SECTION("a replacement that took over while its subscriptions moved") {
    auto s = slot_in(connection_state::connected);
    CHECK(s.lame_duck(2) == "replace 2 -> 3");
    CHECK(s.up(3) == "move 3");
    CHECK(s.down(2, "connection lost")
          == "take_over 3; notify connecting (replacement generation 3 takes over after: "
             "connection lost)");
    CHECK(s.lame_duck(3).empty());
    CHECK(s.moved(3) == "notify connected; ready; replace 3 -> 4");
  }
  SECTION("the notice of a child that failed does not pass to the next one") {
    auto s = slot_in(connection_state::connecting);
    CHECK(s.lame_duck(2).empty());
    CHECK(s.down(2) == restart_actions(2, 2, 4000, "connection refused"));
    CHECK(s.timer(2) == spawn_actions(3));
    CHECK(s.up(3) == "notify connected; ready");
  }
  SECTION("a notice about the replacement before it serves: replaced once the old child ended") {
    auto s = slot_in(connection_state::connected);
    CHECK(s.lame_duck(2) == "replace 2 -> 3");
    CHECK(s.lame_duck(3).empty());
    CHECK(s.up(3) == "move 3");
    CHECK(s.moved(3) == "switch_over 2 -> 3; ready");
    CHECK(s.down(2, "stopped") == "replace 3 -> 4");
  }
  SECTION("a notice while the replaced child has not ended: acted on when it ended") {
    auto s = slot_in(connection_state::connected);
    CHECK(s.lame_duck(2) == "replace 2 -> 3");
    CHECK(s.up(3) == "move 3");
    CHECK(s.moved(3) == "switch_over 2 -> 3; ready");
    CHECK(s.lame_duck(3).empty()); // never three children alive
    CHECK(s.down(2, "stopped") == "replace 3 -> 4");
    CHECK(s.down(2, "stopped").empty()); // once
  }
  SECTION("a notice while connecting, then a close: nothing replaced") {
    auto s = slot_in(connection_state::connecting);
    CHECK(s.lame_duck(2).empty());
    CHECK(s.close() == "notify closing; stop 2");
    CHECK(s.up(2).empty());
    CHECK(s.down(2, "stopped") == closed_actions);
  }
  SECTION("a stale notice is not remembered") {
    auto s = slot_in(connection_state::connecting);
    CHECK(s.lame_duck(1).empty());
    CHECK(s.up(2) == "notify connected; ready");
  }
}

TEST_CASE("lame duck is ignored unless the serving child is up and no other child lives",
          "[slot][lame-duck]") {
  for (auto st : {connection_state::connecting, connection_state::restarting,
                  connection_state::gave_up, connection_state::closing,
                  connection_state::closed}) {
    INFO(show(st));
    auto s = slot_in(st);
    CHECK(s.lame_duck(2).empty());
  }
  auto s = slot_in(connection_state::connected);
  CHECK(s.lame_duck(1).empty()); // stale
  CHECK(s.lame_duck(2) == "replace 2 -> 3");
  CHECK(s.lame_duck(2).empty()); // one replacement at a time
  CHECK(s.lame_duck(3).empty()); // the replacement does not serve yet
  CHECK(s.up(3) == "move 3");
  CHECK(s.moved(3) == "switch_over 2 -> 3; ready");
  CHECK(s.lame_duck(3).empty()); // the retired child has not ended: never three alive
  CHECK(s.moved(3).empty());     // a second report changes nothing
}

// -- randomized ---------------------------------------------------------------------------------

namespace {

bool legal(connection_state from, connection_state to) {
  using cs = connection_state;
  switch (from) {
    case cs::closed: return to == cs::connecting;
    case cs::connecting:
      return to == cs::connected || to == cs::restarting || to == cs::gave_up || to == cs::closing;
    case cs::connected:
    case cs::reconnecting:
      // connecting: the serving child failed and its replacement takes over.
      return to == (from == cs::connected ? cs::reconnecting : cs::connected)
             || to == cs::restarting || to == cs::gave_up || to == cs::closing
             || to == cs::connecting;
    case cs::restarting:
    case cs::gave_up: return to == cs::connecting || to == cs::closed;
    case cs::closing: return to == cs::closed;
  }
  return false;
}

std::string plural(int n, const char* one, const char* many) {
  return std::to_string(n) + (n == 1 ? one : many);
}

/// The model's own list (not the slot's classify): bad input, refused credentials or TLS.
bool permanent(errc code) {
  return code == errc::invalid_url || code == errc::invalid_config || code == errc::auth_failed
         || code == errc::tls_failed;
}

/// How often the random sequences reached the cases worth reaching: each must be > 0.
struct coverage {
  int restarts = 0;        ///< arm_restart
  int stable_restarts = 0; ///< arm_restart right after a stable up period ended
  int permanent = 0;       ///< gave up: permanent failure
  int exhausted = 0;       ///< gave up: max_attempts
  int window = 0;          ///< gave up: max_restarts within the window
  int reopens = 0;         ///< a start while closing honoured after the close
  int joined_closes = 0;   ///< a close that found the slot closing
  int ignored = 0;         ///< events that changed nothing visible
  int replacements = 0;    ///< replace (lame duck)
  int switch_overs = 0;    ///< a replacement took over the message path
  int take_overs = 0;      ///< the serving child failed during a replacement
  int failed_replacements = 0; ///< the replacement ended before it served
  int deferred_replacements = 0; ///< replace at the up of a child whose notice came first
};

/// One random sequence: the slot, the world around it (children, timers) and a reference model
/// of the restart policy. Every step feeds one event and checks every invariant; the first
/// violation is kept in `error` with the trace of the sequence.
class random_run {
 public:
  random_run(std::mt19937& rng, restart_policy p, coverage& cov)
    : rng_(rng), p_(p), slot_(std::move(p)), cov_(cov), fast_(chance(50)) {}

  void step() {
    now_ += random_pause();
    auto in = random_event();
    feed(in);
  }

  /// Closes the slot and lets the stopped children end: every close must have been answered.
  void drain() {
    feed(ev::close{});
    for (auto g : std::set<uint64_t>{live_})
      feed(ev::child_down{g, errc::none, "stopped", now_, 0.5});
    expect(slot_.state() == connection_state::closed, "the drained slot is not closed");
    expect(!slot_.child_alive() && live_.empty(), "a child outlived the drain");
    expect(!slot_.reopen_pending(), "a reopen outlived the drain");
    expect(owed_ == answered_,
           "closes owed " + std::to_string(owed_) + ", answered " + std::to_string(answered_));
  }

  const std::string& error() const { return error_; }
  std::string trace() const {
    std::string t;
    for (const auto& line : trace_)
      t += line + "\n";
    return t;
  }
  size_t events() const { return trace_.size(); }

 private:
  template <class T>
  T pick(std::initializer_list<T> xs) {
    auto i = std::uniform_int_distribution<size_t>(0, xs.size() - 1)(rng_);
    return *(xs.begin() + i);
  }
  bool chance(int percent) { return std::uniform_int_distribution<int>(0, 99)(rng_) < percent; }

  caf::timespan random_pause() {
    auto ms = [this](int lo, int hi) {
      return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng_));
    };
    int r = std::uniform_int_distribution<int>(0, 99)(rng_);
    if (fast_) // flapping: many restarts within the window
      return r < 95 ? ms(0, 3000) : ms(20000, 70000);
    return r < 50 ? ms(0, 2000) : r < 85 ? ms(2000, 20000) : ms(20000, 70000);
  }

  /// Mostly the live child, sometimes any child the world ever knew (live or dead).
  uint64_t some_child() {
    if (!live_.empty() && chance(80)) {
      auto i = std::uniform_int_distribution<size_t>(0, live_.size() - 1)(rng_);
      return *std::next(live_.begin(), static_cast<std::ptrdiff_t>(i));
    }
    return std::uniform_int_distribution<uint64_t>(1, spawned_)(rng_);
  }

  slot_input random_event() {
    // A replacement mostly comes up and gets its subscriptions soon, as in the world.
    if (!moving_.empty() && chance(30)) {
      auto g = *moving_.begin();
      moving_.erase(moving_.begin());
      return ev::moved{g, now_};
    }
    if (slot_.next_generation() != 0 && chance(20))
      return ev::child_up{slot_.next_generation(), now_};
    int r = std::uniform_int_distribution<int>(0, 99)(rng_);
    if (spawned_ == 0 || r < 10)
      return ev::start{};
    if (r < 24)
      return ev::child_up{some_child(), now_};
    if (r < 34)
      return ev::disconnected{some_child(), now_};
    if (r < 44)
      return ev::reconnected{some_child(), now_};
    if (r < 62) {
      auto g = some_child();
      auto code
        = chance(5)
            ? pick({errc::auth_failed, errc::tls_failed, errc::invalid_url, errc::invalid_config})
            : pick({errc::connect_failed, errc::connection_closed, errc::none, errc::timeout,
                    errc::nats_error});
      auto detail = stopping_.count(g) ? std::string{"stopped"}
                                       : pick({"connection refused", "connection lost", ""});
      return ev::child_down{g, code, detail, now_,
                            std::uniform_real_distribution<double>(0.0, 1.0)(rng_)};
    }
    if (r < 80) {
      if (!timers_.empty() && chance(85)) {
        auto i = std::uniform_int_distribution<size_t>(0, timers_.size() - 1)(rng_);
        auto [g, due] = timers_[i];
        timers_.erase(timers_.begin() + static_cast<std::ptrdiff_t>(i));
        now_ = std::max(now_, due);
        return ev::timer{g};
      }
      return ev::timer{std::uniform_int_distribution<uint64_t>(0, spawned_ + 1)(rng_)};
    }
    if (r < 90)
      return ev::close{};
    if (r < 92)
      return ev::reset{};
    if (r < 96) // lame duck mode, mostly of the serving child
      return ev::lame_duck{chance(80) ? slot_.generation() : some_child()};
    if (!moving_.empty() && chance(85)) { // the supervisor reports a move it was asked for
      auto g = *moving_.begin();
      moving_.erase(moving_.begin());
      return ev::moved{g, now_};
    }
    return ev::moved{some_child(), now_};
  }

  void expect(bool ok, const std::string& what) {
    if (!ok && error_.empty())
      error_ = what;
  }

  void feed(const slot_input& in) {
    auto before = slot_.state();
    auto generation_before = slot_.generation();
    if (std::holds_alternative<ev::close>(in)) {
      if (before != connection_state::closing)
        ++owed_; // a close that finds the slot closing joins the close in progress
      else
        ++cov_.joined_closes;
    }
    if (auto* d = std::get_if<ev::child_down>(&in)) {
      live_.erase(d->generation); // the world's child is gone, whatever the slot thinks
      stopping_.erase(d->generation);
    }
    if (std::holds_alternative<ev::reset>(in))
      model_ = {};
    // The model's own record of the children whose server announced lame duck mode.
    if (auto* l = std::get_if<ev::lame_duck>(&in); l && live_.count(l->generation) == 1)
      noticed_.insert(l->generation);
    auto out = slot_.handle(in);
    cov_.ignored += out.empty();
    trace_.push_back(describe(in) + " -> " + show(out));
    check_actions(before, generation_before, in, out);
    check_state();
  }

  static std::string describe(const slot_input& in) {
    return std::visit(
      overloaded{
        [](const ev::start&) { return std::string{"start"}; },
        [](const ev::child_up& e) { return "child_up " + std::to_string(e.generation); },
        [](const ev::disconnected& e) { return "disconnected " + std::to_string(e.generation); },
        [](const ev::reconnected& e) { return "reconnected " + std::to_string(e.generation); },
        [](const ev::child_down& e) {
          return "child_down " + std::to_string(e.generation) + " " + show(e.code) + " '" + e.detail
                 + "'";
        },
        [](const ev::timer& e) { return "timer " + std::to_string(e.generation); },
        [](const ev::close&) { return std::string{"close"}; },
        [](const ev::reset&) { return std::string{"reset"}; },
        [](const ev::lame_duck& e) { return "lame_duck " + std::to_string(e.generation); },
        [](const ev::moved& e) { return "moved " + std::to_string(e.generation); },
      },
      in);
  }

  /// The reference model: the up period ends when the slot leaves connected (or, closed from
  /// connected, when the child is down); a stable one ends the episode.
  void on_transition(connection_state to) {
    if (to == connection_state::connected) {
      model_.up_since = now_;
      return;
    }
    if (to == connection_state::closing || !model_.up_since)
      return;
    if (now_ - *model_.up_since >= p_.stable_period) {
      model_.attempt = 0;
      stable_credit_ = true;
    }
    model_.up_since.reset();
  }

  int restarts_in_window() const {
    int n = 0;
    for (auto t : model_.restarts)
      n += t >= now_ - p_.window;
    return n;
  }

  void on_arm(const act::arm_restart& a, const ev::child_down* down) {
    expect(down != nullptr && !permanent(down->code), "arm_restart without a transient failure");
    expect(model_.attempt < p_.max_attempts && restarts_in_window() < p_.max_restarts,
           "restarted although a limit was reached");
    int attempt = model_.attempt + 1;
    expect(a.attempt == attempt,
           "attempt " + std::to_string(a.attempt) + ", the model says " + std::to_string(attempt));
    expect(!stable_credit_ || a.attempt == 1, "a stable connection did not restart at attempt 1");
    if (down)
      expect(a.delay == p_.delay_for(attempt, down->draw), "wrong delay " + show(a.delay));
    expect(a.generation == slot_.generation(), "arm_restart for another generation");
    ++cov_.restarts;
    cov_.stable_restarts += stable_credit_;
    stable_credit_ = false;
    model_.attempt = attempt;
    model_.restarts.push_back(now_);
    while (model_.restarts.front() < now_ - p_.window)
      model_.restarts.pop_front();
    timers_.emplace_back(a.generation, now_ + a.delay);
  }

  void on_gave_up(const act::gave_up& g, const ev::child_down* down) {
    if (!down) {
      expect(false, "gave_up without a failure");
      return;
    }
    std::string reason;
    if (permanent(down->code)) {
      reason = "permanent failure" + (down->detail.empty() ? "" : ": " + down->detail);
      ++cov_.permanent;
    } else if (model_.attempt >= p_.max_attempts) {
      reason = plural(p_.max_attempts, " restart attempt exhausted", " restart attempts exhausted");
      ++cov_.exhausted;
    } else if (restarts_in_window() >= p_.max_restarts) {
      reason = plural(p_.max_restarts, " restart within 60s", " restarts within 60s");
      ++cov_.window;
    }
    expect(!reason.empty(), "gave up although the model restarts");
    expect(slot_.give_up_reason() == reason,
           "reason '" + slot_.give_up_reason() + "', expected '" + reason + "'");
    auto cause = permanent(down->code) ? reason : reason + "; last error: " + down->detail;
    expect(g.reason == cause, "gave_up says: " + g.reason);
    // Callers learn what to fix: a refused credential is auth_failed, not a generic gave_up.
    auto code = permanent(down->code) ? down->code : errc::gave_up;
    expect(g.code == code, "gave_up with code " + show(g.code) + ", expected " + show(code));
  }

  /// Whether event `in` may move the slot from `from` to `to`; `g` is the generation before it.
  static bool triggered_by(connection_state from, connection_state to, const slot_input& in,
                           uint64_t g) {
    using cs = connection_state;
    auto of = [&](auto tag) {
      using event = decltype(tag);
      auto* e = std::get_if<event>(&in);
      return e != nullptr && e->generation == g;
    };
    if (to == cs::closing || ((from == cs::restarting || from == cs::gave_up) && to == cs::closed))
      return std::holds_alternative<ev::close>(in);
    if (from == cs::closed) // a start, or the reopen after a close (at its last child's end)
      return std::holds_alternative<ev::start>(in) || std::holds_alternative<ev::child_down>(in);
    if (from == cs::closing && to == cs::closed) // the last of the stopped children ended
      return std::holds_alternative<ev::child_down>(in);
    if (from == cs::restarting)
      return of(ev::timer{});
    if (from == cs::gave_up)
      return std::holds_alternative<ev::reset>(in);
    // A replacement connected: at the switch-over (from reconnecting), or after it took over.
    if (to == cs::connected && std::holds_alternative<ev::moved>(in))
      return from == cs::reconnecting || of(ev::moved{});
    if (to == cs::connected)
      return from == cs::connecting ? of(ev::child_up{}) : of(ev::reconnected{});
    if (to == cs::reconnecting)
      return of(ev::disconnected{});
    return of(ev::child_down{}); // to restarting, gave_up, or closed from closing
  }

  void check_actions(connection_state before, uint64_t generation_before, const slot_input& in,
                     const std::vector<slot_output>& out) {
    const auto* down = std::get_if<ev::child_down>(&in);
    auto cur = before;
    int spawns = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const auto* prev = i > 0 ? std::get_if<act::notify>(&out[i - 1]) : nullptr;
      auto after = [&](connection_state s) { return prev != nullptr && prev->state == s; };
      std::visit(
        overloaded{
          [&](const act::notify& n) {
            expect(legal(cur, n.state), "illegal transition " + show(cur) + " -> " + show(n.state));
            expect(triggered_by(cur, n.state, in, generation_before),
                   "wrong trigger for " + show(cur) + " -> " + show(n.state));
            on_transition(n.state);
            cur = last_notified_ = n.state;
          },
          [&](const act::spawn& s) {
            expect(s.generation > spawned_, "generation did not increase");
            expect(i + 1 < out.size() && std::holds_alternative<act::notify>(out[i + 1])
                     && std::get<act::notify>(out[i + 1]).state == connection_state::connecting,
                   "spawn without connecting");
            spawned_ = s.generation;
            live_.insert(s.generation);
            ++spawns;
          },
          [&](const act::stop& s) {
            expect(after(connection_state::closing)
                     || (i > 0 && std::holds_alternative<act::stop>(out[i - 1])),
                   "stop outside closing");
            expect(live_.count(s.generation) == 1, "stop for a child that is not alive");
            stopping_.insert(s.generation);
          },
          [&](const act::arm_restart& a) {
            expect(after(connection_state::restarting), "arm_restart outside restarting");
            on_arm(a, down);
          },
          [&](const act::ready&) {
            // On entering connected, or when a replacement takes over a connected slot.
            bool switched = i > 0 && std::holds_alternative<act::switch_over>(out[i - 1])
                            && slot_.state() == connection_state::connected;
            expect(after(connection_state::connected) || switched, "stray ready");
          },
          [&](const act::gave_up& g) {
            expect(after(connection_state::gave_up), "gave_up outside gave_up");
            on_gave_up(g, down);
          },
          [&](const act::replace& x) {
            // At the notice, or later for a notice that could not be acted on at once; at most
            // once per notice.
            expect(noticed_.erase(x.old) == 1, "replace without lame duck");
            cov_.deferred_replacements += !std::holds_alternative<ev::lame_duck>(in);
            expect(x.old == generation_before && live_.count(x.old) == 1,
                   "replace beside a child that does not serve");
            expect(x.next > spawned_, "generation did not increase");
            spawned_ = x.next;
            live_.insert(x.next);
            ++cov_.replacements;
          },
          [&](const act::move& x) {
            const auto* up = std::get_if<ev::child_up>(&in);
            expect(up != nullptr && up->generation == x.generation
                     && x.generation == slot_.next_generation(),
                   "move for something else than the replacement that came up");
            moving_.insert(x.generation);
          },
          [&](const act::switch_over& x) {
            const auto* m = std::get_if<ev::moved>(&in);
            expect(m != nullptr && m->generation == x.next, "switch_over without its move");
            expect(x.old == generation_before && slot_.generation() == x.next,
                   "switch_over between the wrong generations");
            stopping_.insert(x.old); // retired: stopped after the overlap
            ++cov_.switch_overs;
          },
          [&](const act::take_over& x) {
            expect(down != nullptr && down->generation == generation_before,
                   "take_over without the serving child's end");
            expect(live_.count(x.generation) == 1 && slot_.generation() == x.generation,
                   "take_over by a child that is not alive");
            ++cov_.take_overs;
          },
          [&](const act::closed&) {
            expect(after(connection_state::closed)
                     || (before == connection_state::closed && out.size() == 1
                         && std::holds_alternative<ev::close>(in)),
                   "stray closed");
            ++answered_;
          },
        },
        out[i]);
    }
    expect(spawns <= 1, "two spawns for one event");
    cov_.reopens += spawns == 1 && before == connection_state::closing;
    expect(cur == slot_.state(), "the state is not the one last notified in this step");
  }

  void check_state() {
    expect(slot_.state() == last_notified_, "the state differs from the last notify");
    expect(live_.size() <= 2, "three live children");
    expect(slot_.child_alive() == (live_.count(slot_.generation()) == 1),
           "child_alive() disagrees with the world");
    expect(slot_.live_children() == static_cast<int>(live_.size()),
           "live_children() disagrees with the world");
    for (auto g : live_) {
      expect(slot_.alive(g), "the world has a child the slot forgot");
      // One child serves; any other is the replacement being prepared or was stopped.
      expect(g == slot_.generation() || g == slot_.next_generation() || stopping_.count(g) == 1,
             "child " + std::to_string(g) + " neither serves, nor is prepared, nor was stopped");
    }
    expect(slot_.next_generation() == 0 || slot_.child_alive()
             || slot_.state() == connection_state::closing,
           "a replacement without a serving child outside a close");
    expect(slot_.last_spawned() == spawned_, "last_spawned() is not the last spawned one");
    expect(slot_.generation() == spawned_ || slot_.next_generation() == spawned_
             || (slot_.generation() < spawned_ && live_.count(spawned_) == 0),
           "generation() is neither the last spawned one nor beside it");
    expect(owed_ - answered_ == (slot_.state() == connection_state::closing ? 1 : 0),
           "closes owed " + std::to_string(owed_) + ", answered " + std::to_string(answered_)
             + " in " + show(slot_.state()));
    expect(slot_.usable()
             == (slot_.state() == connection_state::connected
                 || slot_.state() == connection_state::reconnecting),
           "usable() disagrees with the state");
    expect(!slot_.reopen_pending() || slot_.state() == connection_state::closing,
           "a reopen pending outside closing");
    expect(slot_.give_up_reason().empty() != (slot_.state() == connection_state::gave_up),
           "give_up_reason() disagrees with the state");
    expect(slot_.history().attempt == model_.attempt,
           "history attempt " + std::to_string(slot_.history().attempt) + ", model "
             + std::to_string(model_.attempt));
  }

  struct policy_model {
    int attempt = 0;
    std::deque<steady_time> restarts;
    std::optional<steady_time> up_since;
  };

  std::mt19937& rng_;
  restart_policy p_;
  connection_slot slot_;
  coverage& cov_;
  bool fast_; ///< short pauses only
  steady_time now_ = t0;
  std::set<uint64_t> live_;                              ///< children alive in the world
  std::set<uint64_t> stopping_;                          ///< children asked to stop
  std::set<uint64_t> moving_; ///< replacements whose subscriptions the supervisor moves
  std::set<uint64_t> noticed_; ///< children whose server announced lame duck mode, not replaced
  uint64_t spawned_ = 0;                                 ///< the last generation spawned
  std::vector<std::pair<uint64_t, steady_time>> timers_; ///< restart timers armed, with due time
  policy_model model_;
  bool stable_credit_ = false; ///< a stable up period ended since the last restart
  connection_state last_notified_ = connection_state::closed;
  int owed_ = 0;     ///< closes that are owed one `closed` each
  int answered_ = 0; ///< `closed` actions seen
  std::vector<std::string> trace_;
  std::string error_;
};

restart_policy random_policy(std::mt19937& rng) {
  auto pick = [&rng](std::initializer_list<int> xs) {
    return *(xs.begin() + std::uniform_int_distribution<size_t>(0, xs.size() - 1)(rng));
  };
  restart_policy p;
  p.max_attempts = pick({1, 3, 8});
  p.max_restarts = pick({2, 3, 1000});
  p.jitter = pick({0, 1}) * 0.2;
  p.stable_period = std::chrono::seconds(pick({10, 30}));
  return p;
}

} // namespace

TEST_CASE("random event sequences keep every invariant of the slot", "[slot][random]") {
  constexpr int sequences_per_seed = 500;
  size_t events = 0;
  int sequences = 0;
  coverage cov;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng{seed};
    for (int n = 0; n < sequences_per_seed; ++n) {
      INFO("sequence " << n);
      random_run run{rng, random_policy(rng), cov};
      auto length = std::uniform_int_distribution<int>(1, 120)(rng);
      for (int i = 0; i < length && run.error().empty(); ++i)
        run.step();
      if (run.error().empty())
        run.drain();
      if (!run.error().empty())
        FAIL(run.error() << "\nafter:\n" << run.trace());
      events += run.events();
      ++sequences;
    }
  }
  CHECK(sequences == 8 * sequences_per_seed);
  CHECK(events > 100'000u);
  CHECK(cov.restarts > 1000);
  CHECK(cov.stable_restarts > 100);
  CHECK(cov.permanent > 100);
  CHECK(cov.exhausted > 100);
  CHECK(cov.window > 20);
  CHECK(cov.reopens > 100);
  CHECK(cov.joined_closes > 100);
  CHECK(cov.ignored > 10'000);
  CHECK(cov.replacements > 500);
  CHECK(cov.switch_overs > 150);
  CHECK(cov.take_overs > 50);
  CHECK(cov.deferred_replacements > 10);
}
