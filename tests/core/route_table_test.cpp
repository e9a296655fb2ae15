// Tests of the pure core route_table: see its header. Actors are ints, stashed messages strings.
#include "supervisors/route_table.hpp"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using table = natsvisor::route_table<int, std::string>;
using natsvisor::route_serial_shift;

// Opens the route of `key` to `actor` as the router does: prepare, spawn, add.
table::route& open(table& t, const std::string& key, int actor) {
  auto o = t.prepare(key);
  return t.add(key, actor, o.serial);
}

} // namespace

TEST_CASE("route_table: each key has one route, found by key, by actor and by an id", "[core][routes]") {
  table t{10};
  auto& a = open(t, "nats://a:1", 1);
  auto& b = open(t, "nats://b:1", 2);
  CHECK(a.serial != b.serial);
  CHECK(t.size() == 2);
  CHECK(t.find("nats://a:1")->actor == 1);
  CHECK(t.find("nats://c:1") == nullptr);
  REQUIRE(t.key_of(2));
  CHECK(*t.key_of(2) == "nats://b:1");
  CHECK(t.key_of(3) == nullptr);
  // Ids handed out by b's actor start at its serial << route_serial_shift.
  auto id = (b.serial << route_serial_shift) + 17;
  REQUIRE(t.key_of_id(id));
  CHECK(*t.key_of_id(id) == "nats://b:1");
  CHECK(t.key_of_id(uint64_t{999} << route_serial_shift) == nullptr);
}

TEST_CASE("route_table: a retirement stashes what arrives meanwhile, for a fresh actor",
          "[core][routes]") {
  table t{10};
  open(t, "k", 1);
  CHECK_FALSE(t.begin_retire("k", 2)); // not its actor
  REQUIRE(t.begin_retire("k", 1));
  CHECK_FALSE(t.begin_retire("k", 1)); // asked already
  auto* r = t.find("k");
  REQUIRE(r);
  CHECK(r->retiring);
  r->stash.push_back("m1");
  r->stash.push_back("m2");
  auto stash = t.retired("k", {7, 3});
  CHECK(stash == std::vector<std::string>{"m1", "m2"});
  CHECK(t.find("k") == nullptr);
  CHECK(t.key_of(1) == nullptr);
  CHECK(t.remembered() == 1);
  // The next actor of the key counts on from what the retired one reached, with a new serial.
  auto o = t.prepare("k");
  CHECK(o.from == table::generations{7, 3});
  CHECK(t.remembered() == 0);
  auto o2 = t.prepare("other");
  CHECK(o2.from == table::generations{0, 0});
  CHECK(o2.serial > o.serial);
}

TEST_CASE("route_table: an actor that got work meanwhile keeps its route and gets the stash",
          "[core][routes]") {
  table t{10};
  open(t, "k", 1);
  REQUIRE(t.begin_retire("k", 1));
  t.find("k")->stash.push_back("m1");
  auto stash = t.kept("k");
  CHECK(stash == std::vector<std::string>{"m1"});
  auto* r = t.find("k");
  REQUIRE(r);
  CHECK_FALSE(r->retiring);
  CHECK(r->stash.empty());
  CHECK(t.begin_retire("k", 1)); // may offer again later
  CHECK(t.kept("unknown").empty());
}

TEST_CASE("route_table: an actor that ended loses its route, once", "[core][routes]") {
  table t{10};
  auto serial = open(t, "k", 1).serial;
  REQUIRE(t.begin_retire("k", 1));
  t.find("k")->stash.push_back("m1");
  auto gone = t.ended(1);
  REQUIRE(gone);
  CHECK(gone->first == "k");
  CHECK(gone->second == std::vector<std::string>{"m1"});
  CHECK(t.empty());
  CHECK_FALSE(t.ended(1));
  CHECK(t.key_of_id(serial << route_serial_shift) == nullptr);
  // Not retired: nothing remembered (a failed actor's URL keeps no count; the service ends).
  CHECK(t.remembered() == 0);
}

TEST_CASE("route_table: the memory of retired URLs is bounded", "[core][routes]") {
  table t{3};
  for (int i = 0; i < 10; ++i) {
    auto key = "k" + std::to_string(i);
    open(t, key, i);
    REQUIRE(t.begin_retire(key, i));
    t.retired(key, {uint64_t(i), 0});
    CHECK(t.remembered() <= 3);
  }
  CHECK(t.empty());
}
