// Tests of the pure core publish_credit (base/publish_credit.hpp): the admission rule by
// exhaustion over small bounds, charge/refund bookkeeping, the ledger of a connection actor that
// ends with publishes still in its mailbox, and the bound under concurrent senders.
#include "base/publish_credit.hpp"

#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

using namespace natsvisor;

TEST_CASE("credit_admits: exactly what fits under both bounds, or anything when nothing is used",
          "[core][credit]") {
  const publish_cost limit{4, 40};
  for (uint64_t um = 0; um <= 6; ++um)
    for (uint64_t ub = 0; ub <= 60; ub += 5)
      for (uint64_t cm = 0; cm <= 6; ++cm)
        for (uint64_t cb = 0; cb <= 60; cb += 5) {
          bool expected = (um == 0 && ub == 0) || (um + cm <= limit.messages && ub + cb <= limit.bytes);
          INFO("used " << um << "/" << ub << " cost " << cm << "/" << cb);
          CHECK(credit_admits({um, ub}, {cm, cb}, limit) == expected);
        }
}

TEST_CASE("credit_admits does not overflow near the largest counts", "[core][credit]") {
  const auto max = std::numeric_limits<uint64_t>::max();
  CHECK_FALSE(credit_admits({1, 1}, {max, 1}, {10, 10}));
  CHECK_FALSE(credit_admits({1, 1}, {1, max}, {10, 10}));
  CHECK(credit_admits({1, 1}, {1, 1}, {max, max}));
}

TEST_CASE("publish_credit charges up to the bound, refuses past it, and refunds",
          "[core][credit]") {
  publish_credit c{{3, 100}};
  CHECK(c.try_charge({1, 40}));
  CHECK(c.try_charge({1, 40}));
  CHECK_FALSE(c.try_charge({1, 40})); // bytes: 120 > 100
  CHECK(c.used() == publish_cost{2, 80});
  CHECK(c.refused() == 1);
  CHECK(c.try_charge({1, 20}));
  CHECK_FALSE(c.try_charge({1, 0})); // messages: 4 > 3
  CHECK(c.refused() == 2);
  c.refund({2, 80});
  CHECK(c.used() == publish_cost{1, 20});
  CHECK(c.try_charge({2, 80}));
  c.refund({3, 100});
  CHECK(c.used() == publish_cost{0, 0});
  // Larger than the bound: admitted alone, and nothing else meanwhile.
  CHECK(c.try_charge({10, 1000}));
  CHECK_FALSE(c.try_charge({1, 1}));
  c.refund({10, 1000});
  // Accepted once (handed back, replayed): charged without asking, even past the bound.
  c.charge({5, 500});
  CHECK(c.used() == publish_cost{5, 500});
  CHECK_FALSE(c.try_charge({1, 1}));
}

TEST_CASE("a ledger refunds what its ended connection actor never took", "[core][credit]") {
  auto credit = std::make_shared<publish_credit>(publish_cost{100, 1000});
  publish_ledger ledger{credit};
  for (int i = 0; i < 10; ++i) {
    REQUIRE(credit->try_charge({1, 10}));
    ledger.handed({1, 10});
  }
  for (int i = 0; i < 4; ++i)
    ledger.settle({1, 10});
  CHECK(credit->used() == publish_cost{6, 60});
  CHECK(ledger.close() == publish_cost{6, 60});
  CHECK(credit->used() == publish_cost{0, 0});
  CHECK(ledger.close() == publish_cost{0, 0}); // once
  CHECK(credit->used() == publish_cost{0, 0});
}

TEST_CASE("concurrent senders never hold more than the bound, and everything comes back",
          "[core][credit]") {
  const publish_cost limit{50, 5000};
  publish_credit c{limit};
  std::atomic<uint64_t> held_messages{0};
  std::atomic<uint64_t> peak{0};
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        publish_cost cost{1, static_cast<uint64_t>(50 + (i + t) % 100)};
        if (!c.try_charge(cost))
          continue;
        ++admitted;
        auto now = ++held_messages;
        for (auto p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);)
          ;
        --held_messages;
        c.refund(cost);
      }
    });
  for (auto& t : ts)
    t.join();
  CHECK(peak.load() <= limit.messages);
  CHECK(admitted.load() > 0);
  CHECK(admitted.load() + c.refused() == 80000);
  CHECK(c.used() == publish_cost{0, 0});
}
