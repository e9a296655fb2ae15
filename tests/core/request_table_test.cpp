// Tests of actors/request_table.hpp: the requests a connection actor has in flight.
#include "actors/request_table.hpp"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using natsvisor::request_table;
using natsvisor::steady_time;

namespace {

const steady_time t0{std::chrono::hours(1)};
constexpr uint64_t high_bit = uint64_t{1} << 63; // like a direct reply slot's token

std::vector<std::string> values(std::vector<std::pair<uint64_t, std::string>> taken) {
  std::vector<std::string> out;
  for (auto& [token, v] : taken)
    out.push_back(v);
  return out;
}

} // namespace

// A connection that fails hands its requests back in this order, and the supervisor sends them
// again in the order it gets them: the order they were sent in, whichever way their replies
// take (a reply slot's token, with its high bit and a reused slot's index, or the table's own).
TEST_CASE("a connection's requests are taken all in the order they arrived, whatever their "
          "tokens",
          "[core][request-table]") {
  request_table<std::string> table{10};
  std::string a = "a", b = "b", c = "c", d = "d", e = "e";
  REQUIRE(table.add(t0 + 5s, a) == 1u);
  REQUIRE(table.add_as(high_bit | 7, t0 + 1s, b)); // a slot's token: far above the table's own
  REQUIRE(table.add(t0 + 2s, c) == 2u);
  REQUIRE(table.add_as(high_bit | 3, t0 + 4s, d)); // a reused slot: a lower token than b's
  REQUIRE(table.add(t0 + 3s, e) == 3u);
  REQUIRE(table.complete(2).value() == "c"); // answered: not handed back
  CHECK(values(table.take_all()) == std::vector<std::string>{"a", "b", "d", "e"});
  CHECK(table.size() == 0);
}

TEST_CASE("a request the table refuses is left to its caller untouched", "[core][request-table]") {
  request_table<std::string> table{1};
  std::string a = "a", b = "b";
  REQUIRE(table.add(t0 + 1s, a));
  CHECK_FALSE(table.add(t0 + 1s, b));
  CHECK_FALSE(table.add_as(high_bit | 1, t0 + 1s, b));
  CHECK(b == "b");
  CHECK(values(table.expire(t0 + 1s)) == std::vector<std::string>{"a"});
}
