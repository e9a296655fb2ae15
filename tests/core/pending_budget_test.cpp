// Tests of the pure core pending_budget: see its header.
#include "base/pending_budget.hpp"

#include <catch2/catch.hpp>

using natsvisor::pending_budget;
using admission = pending_budget::admission;

TEST_CASE("pending_budget accepts up to its message limit and tells one episode per overflow",
          "[core][budget]") {
  pending_budget b{4, 1000};
  for (int i = 0; i < 4; ++i)
    CHECK(b.admit(10) == admission::accepted);
  CHECK(b.messages() == 4);
  CHECK(b.bytes() == 40);
  // The first drop starts the episode; the next ones belong to it.
  CHECK(b.admit(10) == admission::dropped_first);
  for (int i = 0; i < 100; ++i)
    CHECK(b.admit(10) == admission::dropped);
  CHECK(b.dropped() == 101);
  CHECK(b.episodes() == 1);
  CHECK(b.slow());
  // One consumed: room for one, still in the episode (not caught up to half).
  b.release(10);
  CHECK(b.slow());
  CHECK(b.admit(10) == admission::accepted);
  CHECK(b.admit(10) == admission::dropped);
  CHECK(b.episodes() == 1);
  // Caught up to half the limit: the episode ends, the next overflow is a new one.
  b.release(10);
  b.release(10);
  CHECK_FALSE(b.slow());
  CHECK(b.admit(10) == admission::accepted);
  CHECK(b.admit(10) == admission::accepted);
  CHECK(b.admit(10) == admission::dropped_first);
  CHECK(b.episodes() == 2);
  CHECK(b.dropped() == 103);
}

TEST_CASE("pending_budget bounds bytes and never starves a lone large message",
          "[core][budget]") {
  pending_budget b{100, 100};
  CHECK(b.admit(60) == admission::accepted);
  CHECK(b.admit(60) == admission::dropped_first);
  CHECK(b.admit(40) == admission::accepted); // fits beside the first
  b.release(60);
  b.release(40);
  CHECK(b.messages() == 0);
  CHECK(b.bytes() == 0);
  // Larger than the whole byte limit, but nothing is pending: the subscriber waits for it.
  CHECK(b.admit(500) == admission::accepted);
  CHECK(b.admit(1) == admission::dropped_first); // the first episode ended when it caught up
  CHECK(b.episodes() == 2);
  b.release(500);
  CHECK_FALSE(b.slow());
  CHECK(b.admit(1) == admission::accepted);
}

TEST_CASE("pending_budget counts drops reported from nats.c's queue as episodes too",
          "[core][budget]") {
  pending_budget b{10, 1000};
  CHECK(b.dropped_elsewhere());
  CHECK_FALSE(b.dropped_elsewhere()); // the same episode
  CHECK(b.episodes() == 1);
  // Nothing pending: the next message is accepted; the episode ends once the subscriber
  // consumed it, not before (its drops at the handover would belong to the same burst).
  CHECK(b.admit(1) == admission::accepted);
  CHECK(b.slow());
  b.release(1);
  CHECK_FALSE(b.slow());
  CHECK(b.dropped_elsewhere());
  CHECK(b.episodes() == 2);
  // Zero limits are treated as one.
  pending_budget one{0, 0};
  CHECK(one.admit(5) == admission::accepted);
  CHECK(one.admit(5) == admission::dropped_first);
}
