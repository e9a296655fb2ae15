// Tests of base/request_deadline.hpp: a caller's timeout bounds the whole wait of its request,
// however often it is parked, held, handed back and forwarded. No clock is read.
#include "base/request_deadline.hpp"

#include <random>
#include <string>

#include "caf/atom.hpp"
#include "caf/make_message.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using natsvisor::carried_timeout;
using natsvisor::carry_timeout;
using natsvisor::park_until;
using natsvisor::deadline_after;
using natsvisor::steady_time;
using natsvisor::time_left;

namespace {

const steady_time t0{std::chrono::hours(1)};

} // namespace

TEST_CASE("the time left is what remains until the deadline, and nothing once it passed",
          "[core][request_deadline]") {
  CHECK(time_left(t0 + 1s, t0) == caf::timespan{1s});
  CHECK(time_left(t0 + 1s, t0 + 999ms) == caf::timespan{1ms});
  CHECK(time_left(t0 + 1s, t0 + 1s) == std::nullopt);
  CHECK(time_left(t0 + 1s, t0 + 2s) == std::nullopt);
}

TEST_CASE("a parked request waits until its own deadline or request_timeout, whichever is first",
          "[core][request_deadline]") {
  CHECK(park_until(t0, 3s, t0 + 1s) == t0 + 1s);  // the caller's 1 s, not request_timeout
  CHECK(park_until(t0, 3s, t0 + 10s) == t0 + 3s); // request_timeout still bounds parking
  CHECK(park_until(t0, 3s, std::nullopt) == t0 + 3s); // a handle or health check: no deadline
}

// A request travels through hops (parked in the supervisor, forwarded, held in the connection
// actor, handed back after a failure, parked again, ...). Each hop makes a deadline of the timeout
// it received and passes on what is left after it waited. Whatever the hops and their waits, the
// request is answered (passed on last, or expired) no later than its caller's deadline.
TEST_CASE("over any chain of hops a request is answered by its caller's deadline",
          "[core][request_deadline]") {
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<int> wait_ms{0, 1500};
  std::uniform_int_distribution<int> hops{1, 8};
  for (int round = 0; round < 10000; ++round) {
    auto timeout = caf::timespan{std::chrono::milliseconds(1 + wait_ms(rng))};
    auto caller_deadline = t0 + timeout;
    auto now = t0;
    caf::timespan carried = timeout; // what the message says when it arrives at a hop
    bool answered = false;
    for (int h = hops(rng); h > 0 && !answered; --h) {
      auto deadline = now + carried;
      // Parked: the hop's wait ends at the connection, or at the parking bound.
      auto wanted = now + std::chrono::milliseconds(wait_ms(rng));
      auto until = std::min(wanted, park_until(now, 3s, deadline));
      now = until;
      auto left = time_left(deadline, now);
      if (!left) {
        answered = true; // errc::timeout, now
        break;
      }
      carried = *left;
      REQUIRE(now + carried == caller_deadline); // nothing is ever added to the caller's wait
    }
    INFO("round " << round);
    REQUIRE(now <= caller_deadline);
  }
}

TEST_CASE("a request message carries its timeout last, and what is passed on carries the time "
          "left without changing other copies",
          "[core][request_deadline]") {
  auto original = caf::make_message(caf::atom("req"), std::string{"subject"}, caf::timespan{1s});
  REQUIRE(carried_timeout(original) == caf::timespan{1s});
  auto forwarded = original;
  carry_timeout(forwarded, 400ms);
  CHECK(carried_timeout(forwarded) == caf::timespan{400ms});
  CHECK(carried_timeout(original) == caf::timespan{1s}); // copy on write
  CHECK(forwarded.get_as<std::string>(1) == "subject");
  // Messages that carry no timeout (a publish, a handle request) are left alone.
  CHECK(carried_timeout(caf::make_message(caf::atom("pub"), std::string{"x"})) == std::nullopt);
  CHECK(carried_timeout(caf::make_message(caf::atom("a"), 1, 2)) == std::nullopt);
}

TEST_CASE("a timeout near timespan's maximum saturates instead of wrapping into the past",
          "[deadline]") {
  auto now = steady_time{} + std::chrono::hours(1000);
  CHECK(deadline_after(now, caf::timespan::max()) == steady_time::max());
  CHECK(deadline_after(now, caf::timespan::max() - caf::timespan{1}) == steady_time::max());
  CHECK(deadline_after(now, std::chrono::seconds(2)) == now + std::chrono::seconds(2));
  CHECK(deadline_after(now, caf::timespan{0}) == now);
}
