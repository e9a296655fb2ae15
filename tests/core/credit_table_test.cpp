// Tests of base/credit_table.hpp: each URL's publish credit, bounded.
#include "base/credit_table.hpp"

#include <catch2/catch.hpp>

using natsvisor::credit_table;
using natsvisor::publish_cost;

namespace {

const publish_cost limit{10, 1000};

} // namespace

TEST_CASE("every user of a URL shares its one credit", "[core][credit_table]") {
  credit_table table{4};
  auto a = table.of("a", limit);
  REQUIRE(a);
  CHECK(table.of("a", limit) == a);
  CHECK(a->limit() == limit);
  CHECK(table.of("b", limit) != a);
  CHECK(table.size() == 2);
}

// Before the bound, one credit per URL ever used stayed for good: 10000 URLs, 10000 credits.
TEST_CASE("credits of URLs nobody uses any more are forgotten, so ever new URLs do not grow the "
          "table",
          "[core][credit_table]") {
  credit_table table{8};
  for (int i = 0; i < 10000; ++i) {
    auto c = table.of("url" + std::to_string(i), limit);
    REQUIRE(c);
    REQUIRE(c->try_charge({1, 10}));
    c->refund({1, 10}); // published, written: nothing charged any more, then let go
  }
  CHECK(table.size() <= 8);
}

TEST_CASE("a credit held by someone or with something charged is kept, and past the bound of "
          "those a new URL gets none",
          "[core][credit_table]") {
  credit_table table{2};
  auto held = table.of("held", limit); // a supervisor or a publisher holds it
  {
    auto charged = table.of("charged", limit);
    charged->charge({1, 10}); // on its way to nats.c, its holder gone meanwhile
  }
  CHECK_FALSE(table.of("new", limit));
  CHECK(table.size() == 2);
  CHECK(table.of("held", limit) == held); // known URLs still get theirs
  // Refunded (only a holder could, so here by hand): forgettable now.
  table.of("charged", limit)->refund({1, 10});
  auto fresh = table.of("new", limit);
  REQUIRE(fresh);
  CHECK(table.size() == 2);
  held.reset();
  CHECK(table.of("newer", limit)); // "held" was let go: forgotten for it
}
