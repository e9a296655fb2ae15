// Tests of the pure core subscription_registry: see its header. Subscribers are ints here.
#include "supervisors/subscription_registry.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

using registry = natsvisor::subscription_registry<int>;
using record = registry::record;

record sub(uint64_t id, int subscriber, std::string url = "nats://a:4222") {
  return record{id, std::move(url), "subject." + std::to_string(id), "queue", subscriber};
}

/// Adds `r`, which must be accepted, and returns whether it was the subscriber's first.
bool add_ok(registry& reg, record r) {
  auto a = reg.add(std::move(r));
  REQUIRE(a.ok);
  return a.first_for_subscriber;
}

/// Removes `id`, which must exist, and returns whether it was the subscriber's last.
bool remove_ok(registry& reg, uint64_t id) {
  auto r = reg.remove(id);
  REQUIRE(r);
  CHECK(r->rec.id == id);
  return r->last_for_subscriber;
}

std::vector<uint64_t> ids_of(const std::vector<record>& records) {
  std::vector<uint64_t> out;
  for (const auto& r : records)
    out.push_back(r.id);
  return out;
}

} // namespace

TEST_CASE("add tells when a subscriber gets its first subscription", "[subscriptions]") {
  registry reg{10};
  CHECK(add_ok(reg, sub(1, 7)));
  CHECK_FALSE(add_ok(reg, sub(2, 7)));
  CHECK(add_ok(reg, sub(3, 8)));
  CHECK(reg.size() == 3);
  CHECK(reg.has_subscriber(7));
  CHECK(reg.has_subscriber(8));
  CHECK_FALSE(reg.has_subscriber(9));
  const auto* r = reg.find(2);
  REQUIRE(r != nullptr);
  CHECK(r->id == 2);
  CHECK(r->url == "nats://a:4222");
  CHECK(r->subject == "subject.2");
  CHECK(r->queue == "queue");
  CHECK(r->subscriber == 7);
}

TEST_CASE("remove tells when a subscriber loses its last subscription", "[subscriptions]") {
  registry reg{10};
  add_ok(reg, sub(1, 7));
  add_ok(reg, sub(2, 7));
  auto r = reg.remove(1);
  REQUIRE(r);
  CHECK(r->rec.subject == "subject.1");
  CHECK_FALSE(r->last_for_subscriber);
  CHECK(reg.has_subscriber(7));
  CHECK(remove_ok(reg, 2));
  CHECK_FALSE(reg.has_subscriber(7));
  CHECK(reg.size() == 0);
  CHECK(add_ok(reg, sub(3, 7))); // a fresh first: monitor again
}

TEST_CASE("unknown ids are answered with nothing", "[subscriptions]") {
  registry reg{10};
  CHECK_FALSE(reg.remove(1));
  CHECK(reg.find(1) == nullptr);
  add_ok(reg, sub(1, 7));
  remove_ok(reg, 1);
  CHECK_FALSE(reg.remove(1)); // removed already
  CHECK(reg.find(1) == nullptr);
  CHECK(reg.remove_subscriber(7).empty());
}

TEST_CASE("first and last are per subscriber over all URLs", "[subscriptions]") {
  registry reg{10};
  CHECK(add_ok(reg, sub(1, 7, "nats://a:4222")));
  CHECK_FALSE(add_ok(reg, sub(2, 7, "nats://b:4222"))); // first on b, not for the subscriber
  CHECK(add_ok(reg, sub(3, 8, "nats://b:4222")));
  CHECK_FALSE(remove_ok(reg, 1)); // last on a, not for the subscriber
  CHECK(remove_ok(reg, 2));
  CHECK(remove_ok(reg, 3));
}

TEST_CASE("a full registry or a taken id refuses and changes nothing", "[subscriptions]") {
  registry reg{2};
  add_ok(reg, sub(1, 7));
  add_ok(reg, sub(2, 7, "nats://b:4222"));
  CHECK(reg.full());
  auto a = reg.add(sub(3, 8, "nats://c:4222"));
  CHECK_FALSE(a.ok);
  CHECK_FALSE(a.first_for_subscriber);
  CHECK_FALSE(reg.has_subscriber(8));
  CHECK(reg.count_url("nats://c:4222") == 0);
  CHECK(reg.find(3) == nullptr);
  remove_ok(reg, 2);
  CHECK_FALSE(reg.full());
  a = reg.add(sub(1, 9, "nats://c:4222")); // id 1 is taken
  CHECK_FALSE(a.ok);
  CHECK_FALSE(a.first_for_subscriber);
  CHECK_FALSE(reg.has_subscriber(9));
  CHECK(reg.count_url("nats://c:4222") == 0);
  REQUIRE(reg.find(1) != nullptr);
  CHECK(reg.find(1)->subscriber == 7);
  CHECK(reg.size() == 1);
  CHECK(remove_ok(reg, 1)); // the refused add did not count for subscriber 7 either
}

TEST_CASE("a registry of capacity 0 holds one subscription", "[subscriptions]") {
  registry reg{0};
  CHECK_FALSE(reg.full());
  add_ok(reg, sub(1, 7));
  CHECK(reg.full());
  CHECK_FALSE(reg.add(sub(2, 7)).ok);
}

TEST_CASE("of_url lists copies of a URL's subscriptions in id order", "[subscriptions]") {
  registry reg{10};
  for (uint64_t id : {5, 2, 9})
    add_ok(reg, sub(id, static_cast<int>(id), "nats://a:4222"));
  add_ok(reg, sub(3, 1, "nats://b:4222"));
  auto a = reg.of_url("nats://a:4222");
  CHECK(ids_of(a) == std::vector<uint64_t>{2, 5, 9});
  CHECK(reg.count_url("nats://a:4222") == 3);
  CHECK(ids_of(reg.of_url("nats://b:4222")) == std::vector<uint64_t>{3});
  CHECK(reg.of_url("nats://c:4222").empty());
  CHECK(reg.count_url("nats://c:4222") == 0);
  remove_ok(reg, 5);
  CHECK(ids_of(a) == std::vector<uint64_t>{2, 5, 9}); // a copy, not a view
  CHECK(ids_of(reg.of_url("nats://a:4222")) == std::vector<uint64_t>{2, 9});
  CHECK(reg.count_url("nats://a:4222") == 2);
}

TEST_CASE("remove_subscriber removes every subscription of a dead subscriber", "[subscriptions]") {
  registry reg{10};
  add_ok(reg, sub(4, 7, "nats://a:4222"));
  add_ok(reg, sub(1, 7, "nats://b:4222"));
  add_ok(reg, sub(2, 8, "nats://a:4222"));
  add_ok(reg, sub(6, 7, "nats://a:4222"));
  auto removed = reg.remove_subscriber(7);
  CHECK(ids_of(removed) == std::vector<uint64_t>{1, 4, 6});
  for (const auto& r : removed)
    CHECK(r.subscriber == 7);
  CHECK_FALSE(reg.has_subscriber(7));
  CHECK(reg.has_subscriber(8));
  CHECK(reg.size() == 1);
  CHECK(reg.count_url("nats://a:4222") == 1);
  CHECK(reg.count_url("nats://b:4222") == 0);
  CHECK(ids_of(reg.of_url("nats://a:4222")) == std::vector<uint64_t>{2});
  CHECK(reg.remove_subscriber(7).empty());
  CHECK(add_ok(reg, sub(4, 7))); // the id is free again, and the subscriber is new again
}

namespace {

constexpr int subscribers = 5;
const std::string urls[] = {"nats://a:4222", "nats://b:4222", "nats://c:4222"};

/// The registry's state as the test expects it, checked after every step. Returns the first
/// violation, or an empty string.
std::string check(const registry& reg, const std::map<uint64_t, record>& model,
                  const std::map<int, int>& monitors) {
  std::map<int, int> subscribed; // 1 per subscriber with a subscription
  std::map<std::string, size_t> per_url;
  for (const auto& [id, r] : model) {
    subscribed[r.subscriber] = 1;
    ++per_url[r.url];
  }
  for (int s = 1; s <= subscribers; ++s) {
    auto taken = monitors.count(s) != 0 ? monitors.at(s) : 0;
    auto expected = subscribed.count(s) != 0 ? 1 : 0;
    if (taken != expected)
      return "subscriber " + std::to_string(s) + ": first minus last is " + std::to_string(taken)
             + ", expected " + std::to_string(expected);
    if (reg.has_subscriber(s) != (expected == 1))
      return "has_subscriber(" + std::to_string(s) + ") is wrong";
  }
  if (reg.size() != model.size())
    return "size() differs";
  for (const auto& url : urls) {
    std::vector<uint64_t> ids;
    for (const auto& [id, r] : model)
      if (r.url == url)
        ids.push_back(id);
    if (reg.count_url(url) != ids.size() || ids_of(reg.of_url(url)) != ids)
      return "count_url or of_url differs for " + url;
  }
  return {};
}

/// One random sequence of adds (ids from a small range, so that some are taken), removes and
/// subscriber deaths. `monitors` counts "first" signals minus "last" ones; a death releases the
/// monitor too (its DOWN message ends it).
std::string run_random_sequence(uint32_t seed, int steps, std::string& trace) {
  std::mt19937 rng{seed};
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>{lo, hi}(rng); };
  const auto capacity = static_cast<size_t>(uniform(0, 25));
  registry reg{capacity};
  std::map<uint64_t, record> model;
  std::map<int, int> monitors;
  std::string problem;
  trace = "capacity " + std::to_string(capacity);
  for (int step = 0; step < steps && problem.empty(); ++step) {
    const int op = uniform(0, 9);
    if (op < 5) {
      auto r
        = sub(static_cast<uint64_t>(uniform(1, 40)), uniform(1, subscribers), urls[uniform(0, 2)]);
      trace += "; add " + std::to_string(r.id) + " " + std::to_string(r.subscriber);
      const bool accept = model.count(r.id) == 0 && model.size() < std::max<size_t>(capacity, 1);
      auto a = reg.add(r);
      if (a.ok != accept)
        problem = "add accepted or refused wrongly";
      monitors[r.subscriber] += a.first_for_subscriber;
      if (a.ok)
        model[r.id] = r;
    } else if (op < 9) {
      auto id = static_cast<uint64_t>(uniform(1, 40));
      trace += "; remove " + std::to_string(id);
      auto r = reg.remove(id);
      auto it = model.find(id);
      if (r.has_value() != (it != model.end()))
        problem = "remove found or missed wrongly";
      else if (r && r->rec.subscriber != it->second.subscriber)
        problem = "remove returned another record";
      if (r) {
        monitors[r->rec.subscriber] -= r->last_for_subscriber;
        model.erase(id);
      }
    } else {
      const int s = uniform(1, subscribers);
      trace += "; remove_subscriber " + std::to_string(s);
      auto removed = reg.remove_subscriber(s);
      monitors[s] -= !removed.empty();
      for (const auto& r : removed)
        if (r.subscriber != s || model.erase(r.id) != 1)
          problem = "remove_subscriber returned another subscriber's or an unknown record";
    }
    if (problem.empty())
      problem = check(reg, model, monitors);
  }
  return problem;
}

} // namespace

TEST_CASE("random operations take each subscriber's monitor once and always release it",
          "[subscriptions][regression]") {
  constexpr uint32_t sequences = 1000;
  constexpr int steps = 200;
  for (uint32_t seed = 1; seed <= sequences; ++seed) {
    std::string trace;
    auto problem = run_random_sequence(seed, steps, trace);
    INFO("seed " << seed << ": " << trace);
    REQUIRE(problem == "");
  }
}
