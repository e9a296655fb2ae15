// Tests of base/request_deadline.hpp: a caller's timeout bounds the whole wait of its request,
// however often it is parked, held, handed back and forwarded. No clock is read.
#include "base/request_deadline.hpp"

#include <random>
#include <string>

#include "caf/atom.hpp"
#include "caf/make_message.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using natsvisor::caller_deadline;
using natsvisor::carried_deadline;
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

// A request travels through hops (parked in the supervisor, forwarded, queued in the connection
// actor's mailbox, held there, handed back after a failure, parked again, ...), each waiting for
// a while before the next reads it. Every hop goes by the deadline the request carries, set once
// from its caller's timeout, so whatever the hops and their waits, the request is answered
// (passed on last, or expired) no later than its caller's deadline. Each hop that instead made a
// deadline of a timeout it received (what was left when the previous hop sent it) would add the
// time the request waited in between: the old representation, checked to overrun below.
TEST_CASE("over any chain of hops a request is answered by its caller's deadline",
          "[core][request_deadline]") {
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<int> wait_ms{0, 1500};
  std::uniform_int_distribution<int> hops{1, 8};
  int overran_as_timespans = 0;
  for (int round = 0; round < 10000; ++round) {
    auto timeout = caf::timespan{std::chrono::milliseconds(1 + wait_ms(rng))};
    auto caller_deadline_at = t0 + timeout;
    auto now = t0;
    auto carried = caller_deadline_at; // what the message says when it arrives at a hop
    auto as_timespan_deadline = caller_deadline_at; // the old way: left at send, from receipt
    for (int h = hops(rng); h > 0; --h) {
      // In a mailbox (or a blocked actor) before the hop reads it.
      auto in_mailbox = std::chrono::milliseconds(wait_ms(rng) / 10);
      auto left_at_send = time_left(as_timespan_deadline, now);
      now += in_mailbox;
      if (left_at_send)
        as_timespan_deadline = now + *left_at_send;
      if (!time_left(carried, now))
        break; // errc::timeout, now
      // Parked: the hop's wait ends at the connection, or at the parking bound.
      auto wanted = now + std::chrono::milliseconds(wait_ms(rng));
      now = std::min(wanted, park_until(now, 3s, carried));
      if (!time_left(carried, now))
        break; // errc::timeout, now
    }
    INFO("round " << round);
    REQUIRE(now <= caller_deadline_at + std::chrono::milliseconds(150)); // one mailbox wait
    if (as_timespan_deadline > caller_deadline_at)
      ++overran_as_timespans;
  }
  CHECK(overran_as_timespans > 0);
}

TEST_CASE("a request message carries its caller's deadline last, unchanged by every hop",
          "[core][request_deadline]") {
  auto m = caf::make_message(caf::atom("req"), std::string{"subject"}, caller_deadline{t0 + 1s});
  REQUIRE(carried_deadline(m) == t0 + 1s);
  CHECK(m.get_as<std::string>(1) == "subject");
  // Messages that carry no deadline (a publish, a handle request, a caller's timespan) have none.
  CHECK(carried_deadline(caf::make_message(caf::atom("pub"), std::string{"x"})) == std::nullopt);
  CHECK(carried_deadline(caf::make_message(caf::atom("req"), std::string{"x"}, caf::timespan{1s}))
        == std::nullopt);
  CHECK(carried_deadline(caf::make_message(caf::atom("a"), 1, 2)) == std::nullopt);
}

TEST_CASE("a timeout near timespan's maximum saturates instead of wrapping into the past",
          "[deadline]") {
  auto now = steady_time{} + std::chrono::hours(1000);
  CHECK(deadline_after(now, caf::timespan::max()) == steady_time::max());
  CHECK(deadline_after(now, caf::timespan::max() - caf::timespan{1}) == steady_time::max());
  CHECK(deadline_after(now, std::chrono::seconds(2)) == now + std::chrono::seconds(2));
  CHECK(deadline_after(now, caf::timespan{0}) == now);
}
