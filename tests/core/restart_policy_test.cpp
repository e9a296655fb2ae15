#include "supervisors/restart_policy.hpp"

#include <chrono>
#include <cmath>
#include <string>
#include <variant>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

using natsvisor::decide;
using natsvisor::failure_history;
using natsvisor::failure_kind;
using natsvisor::restart_decision;
using natsvisor::restart_policy;
using natsvisor::decision::give_up;
using natsvisor::decision::restart_after;

namespace {

/// An arbitrary fixed point in time, so that tests never read a clock.
const natsvisor::steady_time t0 = natsvisor::steady_time{} + std::chrono::hours(24 * 365 * 50);

/// The largest draw a generator producing values in [0, 1) can return.
const double almost_one = std::nextafter(1.0, 0.0);

restart_policy without_jitter() {
  restart_policy p;
  p.jitter = 0.0;
  return p;
}

restart_after expect_restart(const restart_decision& d) {
  const auto* r = std::get_if<restart_after>(&d);
  INFO("expected a restart, got: "
       << (std::holds_alternative<give_up>(d) ? std::get<give_up>(d).reason : std::string{}));
  REQUIRE(r != nullptr);
  return *r;
}

std::string expect_give_up(const restart_decision& d) {
  const auto* g = std::get_if<give_up>(&d);
  INFO("expected giving up, got a restart for attempt "
       << (g == nullptr ? std::get<restart_after>(d).attempt : 0));
  REQUIRE(g != nullptr);
  return g->reason;
}

/// Decides on a transient failure at `now` and, like the supervisor, records
/// the restart when one is decided.
restart_decision fail_transient(const restart_policy& p, failure_history& h, natsvisor::steady_time now) {
  auto d = decide(p, h, failure_kind::transient, "connection refused", now, 0.5);
  if (std::holds_alternative<restart_after>(d))
    h.record_restart(now, p);
  return d;
}

} // namespace

TEST_CASE("delays grow exponentially from the base delay and are capped at "
          "max_delay",
          "[policy]") {
  auto p = without_jitter();
  CHECK(p.delay_for(1, 0.5) == 2s);
  CHECK(p.delay_for(2, 0.5) == 4s);
  CHECK(p.delay_for(3, 0.5) == 8s);
  CHECK(p.delay_for(4, 0.5) == 16s);
  CHECK(p.delay_for(5, 0.5) == 30s);
  CHECK(p.delay_for(6, 0.5) == 30s);
  CHECK(p.delay_for(100, 0.5) == 30s);
  CHECK(p.delay_for(100000, 0.5) == 30s);
}

TEST_CASE("an attempt number below 1 gets the base delay", "[policy]") {
  auto p = without_jitter();
  CHECK(p.delay_for(0, 0.5) == 2s);
  CHECK(p.delay_for(-3, 0.5) == 2s);
}

TEST_CASE("a draw of 0 shortens the delay by the jitter fraction", "[policy]") {
  restart_policy p;
  CHECK(p.delay_for(1, 0.0) == 1600ms);
  CHECK(p.delay_for(4, 0.0) == 12800ms);
  CHECK(p.delay_for(5, 0.0) == 24s);
}

TEST_CASE("a draw of 0.5 leaves the delay unjittered", "[policy]") {
  restart_policy p;
  CHECK(p.delay_for(1, 0.5) == 2s);
  CHECK(p.delay_for(4, 0.5) == 16s);
  CHECK(p.delay_for(5, 0.5) == 30s);
}

TEST_CASE("a draw just below 1 lengthens the delay by the jitter fraction "
          "and stays within max_delay plus jitter",
          "[policy]") {
  restart_policy p;
  CHECK(p.delay_for(1, almost_one) == 2400ms);
  CHECK(p.delay_for(4, almost_one) == 19200ms);
  CHECK(p.delay_for(5, almost_one) == 36s);
  CHECK(p.delay_for(50, almost_one) == 36s);
}

TEST_CASE("draws outside the unit interval are clamped into it", "[policy]") {
  restart_policy p;
  CHECK(p.delay_for(1, -1.0) == 1600ms);
  CHECK(p.delay_for(1, 1.0) == 2400ms);
  CHECK(p.delay_for(1, 7.0) == 2400ms);
  CHECK(p.delay_for(1, std::nan("")) == 1600ms);
}

TEST_CASE("delays are never negative and never above max_delay times one "
          "plus jitter",
          "[policy]") {
  restart_policy p;
  p.jitter = 1.0;
  p.base_delay = 3s;
  p.multiplier = 3.0;
  p.max_delay = 40s;
  for (int attempt = 1; attempt <= 12; ++attempt) {
    for (double draw : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, almost_one, 1.0}) {
      INFO("attempt " << attempt << ", draw " << draw);
      auto d = p.delay_for(attempt, draw);
      CHECK(d >= 0ns);
      CHECK(d <= 80s);
    }
  }
  CHECK(p.delay_for(1, 0.0) == 0s);
  CHECK(p.delay_for(12, 1.0) == 80s);
}

TEST_CASE("zero jitter makes the delay independent of the draw", "[policy]") {
  auto p = without_jitter();
  for (int attempt = 1; attempt <= 6; ++attempt) {
    INFO("attempt " << attempt);
    auto expected = p.delay_for(attempt, 0.5);
    CHECK(p.delay_for(attempt, 0.0) == expected);
    CHECK(p.delay_for(attempt, 0.3) == expected);
    CHECK(p.delay_for(attempt, almost_one) == expected);
  }
}

TEST_CASE("multiplier 1 gives a constant delay", "[policy]") {
  auto p = without_jitter();
  p.multiplier = 1.0;
  p.base_delay = 1500ms;
  for (int attempt = 1; attempt <= 10; ++attempt) {
    INFO("attempt " << attempt);
    CHECK(p.delay_for(attempt, 0.5) == 1500ms);
  }
}

TEST_CASE("a zero base delay restarts immediately at every attempt", "[policy]") {
  restart_policy p;
  p.base_delay = 0s;
  CHECK(p.delay_for(1, almost_one) == 0s);
  CHECK(p.delay_for(100000, almost_one) == 0s);
}

TEST_CASE("the first transient failure restarts after the base delay as "
          "attempt 1",
          "[policy]") {
  restart_policy p;
  failure_history h;
  auto r = expect_restart(decide(p, h, failure_kind::transient, "connection refused", t0, 0.0));
  CHECK(r.attempt == 1);
  CHECK(r.delay == 1600ms);
  // Deciding alone must leave the history to the supervisor.
  CHECK(h.attempt == 0);
  CHECK(h.restarts.empty());
}

TEST_CASE("successive failures back off and number their attempts", "[policy]") {
  auto p = without_jitter();
  failure_history h;
  auto now = t0;
  for (auto [attempt, delay] : {std::pair{1, caf::timespan{2s}}, std::pair{2, caf::timespan{4s}},
                                std::pair{3, caf::timespan{8s}}, std::pair{4, caf::timespan{16s}},
                                std::pair{5, caf::timespan{30s}}}) {
    INFO("attempt " << attempt);
    auto r = expect_restart(fail_transient(p, h, now));
    CHECK(r.attempt == attempt);
    CHECK(r.delay == delay);
    CHECK(h.attempt == attempt);
    now += r.delay;
  }
}

TEST_CASE("gives up after max_attempts restarts with a reason naming the "
          "limit",
          "[policy]") {
  restart_policy p;
  failure_history h;
  auto now = t0;
  for (int i = 1; i <= 5; ++i) {
    INFO("restart " << i);
    expect_restart(fail_transient(p, h, now));
    now += 40s; // spread out, so that only max_attempts can be the limit
  }
  CHECK(expect_give_up(fail_transient(p, h, now)) == "5 restart attempts exhausted");
  CHECK(h.attempt == 5);
}

TEST_CASE("a single allowed attempt is named in the singular", "[policy]") {
  restart_policy p;
  p.max_attempts = 1;
  failure_history h;
  expect_restart(fail_transient(p, h, t0));
  CHECK(expect_give_up(fail_transient(p, h, t0 + 10s)) == "1 restart attempt exhausted");
}

TEST_CASE("a permanent failure gives up immediately with its detail", "[policy]") {
  restart_policy p;
  failure_history h;
  CHECK(expect_give_up(decide(p, h, failure_kind::permanent, "authorization violation", t0, 0.5))
        == "permanent failure: authorization violation");
  CHECK(expect_give_up(decide(p, h, failure_kind::permanent, "", t0, 0.5)) == "permanent failure");
}

TEST_CASE("refused credentials and TLS are permanent like bad input and nothing else is",
          "[policy]") {
  using natsvisor::classify;
  using natsvisor::errc;
  for (auto code : {errc::auth_failed, errc::tls_failed, errc::invalid_url, errc::invalid_config})
    CHECK(classify(code) == failure_kind::permanent);
  // Every other code, including none (a crash or a plain stop), is worth a restart.
  for (int i = 0; i <= static_cast<int>(errc::dropped); ++i) {
    auto code = static_cast<errc>(i);
    if (code == errc::auth_failed || code == errc::tls_failed || code == errc::invalid_url
        || code == errc::invalid_config)
      continue;
    INFO("code " << i);
    CHECK(classify(code) == failure_kind::transient);
  }
}

TEST_CASE("a permanent failure gives up even when a stable connection ended "
          "the episode",
          "[policy]") {
  restart_policy p;
  failure_history h;
  h.record_up(t0);
  CHECK(expect_give_up(decide(p, h, failure_kind::permanent, "bad url", t0 + 1h, 0.5))
        == "permanent failure: bad url");
}

TEST_CASE("max_restarts within the window gives up even though attempts "
          "remain",
          "[policy]") {
  restart_policy p;
  p.max_attempts = 1000;
  p.max_restarts = 3;
  failure_history h;
  expect_restart(fail_transient(p, h, t0));
  expect_restart(fail_transient(p, h, t0 + 1s));
  expect_restart(fail_transient(p, h, t0 + 2s));
  CHECK(expect_give_up(fail_transient(p, h, t0 + 3s)) == "3 restarts within 60s");
  CHECK(h.attempt == 3);
}

TEST_CASE("restarts older than the window do not count toward max_restarts", "[policy]") {
  restart_policy p;
  p.max_attempts = 1000;
  p.max_restarts = 3;
  failure_history h;
  h.record_restart(t0, p);
  h.record_restart(t0 + 10s, p);
  h.record_restart(t0 + 20s, p);
  SECTION("a restart exactly one window old still counts") {
    CHECK(expect_give_up(fail_transient(p, h, t0 + 60s)) == "3 restarts within 60s");
  }
  SECTION("a restart one nanosecond older than the window no longer counts") {
    auto r = expect_restart(fail_transient(p, h, t0 + 60s + 1ns));
    CHECK(r.attempt == 4);
  }
  SECTION("the limit applies again once the window fills up") {
    expect_restart(fail_transient(p, h, t0 + 61s));
    CHECK(expect_give_up(fail_transient(p, h, t0 + 62s)) == "3 restarts within 60s");
  }
}

TEST_CASE("the reason names a window that is not a whole number of seconds "
          "exactly",
          "[policy]") {
  restart_policy p;
  p.max_restarts = 1;
  p.window = 1500ms;
  failure_history h;
  expect_restart(fail_transient(p, h, t0));
  CHECK(expect_give_up(fail_transient(p, h, t0 + 1s)) == "1 restart within 1500ms");
}

TEST_CASE("record_restart drops restarts older than the window", "[policy]") {
  restart_policy p;
  failure_history h;
  h.record_restart(t0, p);
  h.record_restart(t0 + 30s, p);
  h.record_restart(t0 + 60s, p);
  REQUIRE(h.restarts.size() == 3);
  h.record_restart(t0 + 61s, p);
  REQUIRE(h.restarts.size() == 3);
  CHECK(h.restarts.front() == t0 + 30s);
  CHECK(h.restarts.back() == t0 + 61s);
  CHECK(h.attempt == 4);
}

TEST_CASE("a connection up for the stable period starts a new episode", "[policy]") {
  auto p = without_jitter();
  failure_history h;
  auto now = t0;
  for (int i = 0; i < 5; ++i) {
    expect_restart(fail_transient(p, h, now));
    now += 40s;
  }
  h.record_up(now);
  auto failed_at = now + 30s;
  auto r = expect_restart(decide(p, h, failure_kind::transient, "connection lost", failed_at, 0.5));
  CHECK(r.attempt == 1);
  CHECK(r.delay == 2s);
  h.record_restart(failed_at, p);
  CHECK(h.attempt == 1);
  CHECK_FALSE(h.up_since.has_value());
}

TEST_CASE("a connection up for less than the stable period continues the "
          "episode",
          "[policy]") {
  auto p = without_jitter();
  failure_history h;
  expect_restart(fail_transient(p, h, t0));
  expect_restart(fail_transient(p, h, t0 + 10s));
  h.record_up(t0 + 20s);
  auto failed_at = t0 + 50s - 1ns;
  auto r = expect_restart(decide(p, h, failure_kind::transient, "connection lost", failed_at, 0.5));
  CHECK(r.attempt == 3);
  CHECK(r.delay == 8s);
  h.record_restart(failed_at, p);
  CHECK(h.attempt == 3);
  CHECK_FALSE(h.up_since.has_value());
}

TEST_CASE("a stable period does not reset the restart window", "[policy]") {
  restart_policy p;
  p.max_restarts = 2;
  p.stable_period = 5s;
  failure_history h;
  expect_restart(fail_transient(p, h, t0));
  h.record_up(t0 + 1s);
  expect_restart(fail_transient(p, h, t0 + 10s));
  CHECK(h.attempt == 1);
  h.record_up(t0 + 11s);
  CHECK(expect_give_up(fail_transient(p, h, t0 + 20s)) == "2 restarts within 60s");
}

TEST_CASE("reset revives a URL that was given up on", "[policy]") {
  restart_policy p;
  failure_history h;
  auto now = t0;
  for (int i = 0; i < 5; ++i) {
    expect_restart(fail_transient(p, h, now));
    now += 1s;
  }
  h.record_up(now);
  expect_give_up(fail_transient(p, h, now + 1s));
  h.reset();
  CHECK(h.attempt == 0);
  CHECK(h.restarts.empty());
  CHECK_FALSE(h.up_since.has_value());
  auto r = expect_restart(fail_transient(p, h, now + 2s));
  CHECK(r.attempt == 1);
  CHECK(r.delay == 2s);
}

TEST_CASE("worst_case_total_delay matches a hand computation", "[policy]") {
  SECTION("defaults: (2 + 4 + 8 + 16 + 30) s times 1.2") {
    restart_policy p;
    CHECK(p.worst_case_total_delay() == 72s);
  }
  SECTION("without jitter the nominal delays add up") {
    auto p = without_jitter();
    p.max_attempts = 3;
    CHECK(p.worst_case_total_delay() == 14s);
  }
  SECTION("many attempts at the cap") {
    restart_policy p;
    p.max_attempts = 1000;
    // 2.4 + 4.8 + 9.6 + 19.2 = 36 seconds, then 996 capped delays of 36s.
    CHECK(p.worst_case_total_delay() == 36s + 996 * 36s);
  }
  SECTION("no attempts means no waiting") {
    restart_policy p;
    p.max_attempts = 0;
    CHECK(p.worst_case_total_delay() == 0s);
  }
  SECTION("it equals the sum of the largest delays of every attempt") {
    restart_policy p;
    p.base_delay = 700ms;
    p.multiplier = 1.5;
    p.max_delay = 5s;
    p.jitter = 0.1;
    p.max_attempts = 8;
    // Nominal: 0.7, 1.05, 1.575, 2.3625, 3.54375, 5, 5, 5 = 24.23125 s,
    // times 1.1.
    CHECK(p.worst_case_total_delay() == 26654375us);
  }
}

// -- record_down: the up period is credited when the connection stops being up ----------------

namespace {

/// A history at attempt `n` of its episode (n restarts one second apart from t0).
failure_history history_at_attempt(const restart_policy& p, int n) {
  failure_history h;
  for (int i = 0; i < n; ++i)
    h.record_restart(t0 + std::chrono::seconds(i), p);
  REQUIRE(h.attempt == n);
  return h;
}

} // namespace

TEST_CASE("record_down after a stable period ends the episode", "[policy]") {
  auto p = without_jitter();
  auto h = history_at_attempt(p, 3);
  auto up = t0 + 10s;
  h.record_up(up);
  SECTION("up for longer than stable_period") {
    h.record_down(up + 31s, p);
    CHECK(h.attempt == 0);
  }
  SECTION("up for exactly stable_period") {
    h.record_down(up + 30s, p);
    CHECK(h.attempt == 0);
  }
  CHECK_FALSE(h.up_since.has_value());
  CHECK(h.restarts.size() == 3); // the window is not reset by a stable period
  // However long nats.c then tries before giving up, the next restart is attempt 1.
  auto r = expect_restart(decide(p, h, failure_kind::transient, "connection lost", up + 1h, 0.5));
  CHECK(r.attempt == 1);
  CHECK(r.delay == 2s);
  h.record_restart(up + 1h, p);
  CHECK(h.attempt == 1);
}

TEST_CASE("record_down before the stable period keeps the episode, and time spent down does "
          "not count as up",
          "[policy]") {
  auto p = without_jitter();
  auto h = history_at_attempt(p, 3);
  auto up = t0 + 10s;
  h.record_up(up);
  h.record_down(up + 30s - 1ns, p);
  CHECK(h.attempt == 3);
  CHECK_FALSE(h.up_since.has_value());
  // decide alone would have measured the hour since up_since and started a new episode.
  auto r = expect_restart(decide(p, h, failure_kind::transient, "connection lost", up + 1h, 0.5));
  CHECK(r.attempt == 4);
  CHECK(r.delay == 16s);
  h.record_restart(up + 1h, p);
  CHECK(h.attempt == 4);
}

TEST_CASE("record_down without an up period keeps the attempt", "[policy]") {
  auto p = without_jitter();
  auto h = history_at_attempt(p, 2);
  h.record_down(t0 + 1h, p);
  CHECK(h.attempt == 2);
  CHECK(h.restarts.size() == 2);
  CHECK_FALSE(h.up_since.has_value());
  SECTION("a second record_down keeps the episode a stable one ended") {
    h.record_up(t0 + 2h);
    h.record_down(t0 + 2h + 40s, p);
    h.record_down(t0 + 5h, p);
    CHECK(h.attempt == 0);
  }
}

TEST_CASE("short up periods separated by record_down do not add up", "[policy]") {
  auto p = without_jitter();
  auto h = history_at_attempt(p, 2);
  h.record_up(t0 + 10s);
  h.record_down(t0 + 30s, p); // 20 s up
  h.record_up(t0 + 31s);
  h.record_down(t0 + 51s, p); // 20 s up again
  CHECK(h.attempt == 2);
  CHECK(expect_restart(fail_transient(p, h, t0 + 2min)).attempt == 3);
}

TEST_CASE("record_down uses the stable_period of the policy it is given", "[policy]") {
  auto p = without_jitter();
  p.stable_period = 5s;
  auto h = history_at_attempt(p, 4);
  h.record_up(t0 + 10s);
  h.record_down(t0 + 15s, p);
  CHECK(h.attempt == 0);
}
