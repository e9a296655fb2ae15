// Tests of the pure core deadline_table (base/deadline_table.hpp) in its two roles: requests
// parked while a URL connects ([parking]) and a connection's requests in flight
// ([request-table]). By hand on a fixed time base, then random operation sequences checked
// against a reference model, with the actor's one-timer protocol simulated. No clock is read.
#include "base/deadline_table.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

using natsvisor::deadline_table;
using natsvisor::steady_time;

namespace {

/// A fixed point in time: tests never read a clock.
const steady_time t0 = steady_time{} + std::chrono::hours(1000);

/// Move-only, like the response promises the tables hold: a moved-from value is empty.
using value = std::unique_ptr<std::string>;
using table = deadline_table<value>;

value make(const std::string& s) {
  return std::make_unique<std::string>(s);
}

/// Adds `name` under `id`, expiring `after` t0; returns add's verdict.
bool add(table& t, uint64_t id, caf::timespan after, const std::string& name) {
  auto v = make(name);
  return t.add(id, t0 + after, v);
}

/// "id=value ..." of what a table returned, in the order returned.
std::string show(const std::vector<std::pair<uint64_t, value>>& xs) {
  std::string out;
  for (const auto& [id, v] : xs)
    out += (out.empty() ? "" : " ") + std::to_string(id) + "=" + (v ? *v : "<moved>");
  return out;
}

} // namespace

// -- [parking]: requests parked while a URL connects ---------------------------------------------

TEST_CASE("an empty table has no deadline and arms no timer", "[parking]") {
  table t{4};
  CHECK(t.empty());
  CHECK(t.size() == 0);
  CHECK_FALSE(t.full());
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK_FALSE(t.rearm().has_value());
  CHECK(t.expire(t0 + 1h).empty());
  CHECK(t.take_all().empty());
  CHECK_FALSE(t.take_oldest().has_value());
  CHECK_FALSE(t.take(1).has_value());
}

TEST_CASE("take_all serves parked requests in arrival order, whatever their deadlines",
          "[parking]") {
  table t{10};
  REQUIRE(add(t, 1, 30s, "a"));
  REQUIRE(add(t, 2, 10s, "b"));
  REQUIRE(add(t, 3, 20s, "c"));
  REQUIRE(add(t, 4, 10s, "d"));
  CHECK(show(t.take_all()) == "1=a 2=b 3=c 4=d");
  CHECK(t.empty());
  CHECK_FALSE(t.next_deadline().has_value());
  CHECK_FALSE(t.contains(1));
}

TEST_CASE("take_oldest serves parked requests one at a time in arrival order", "[parking]") {
  table t{10};
  REQUIRE(add(t, 1, 30s, "a"));
  REQUIRE(add(t, 2, 10s, "b"));
  auto first = t.take_oldest();
  REQUIRE(first);
  CHECK(first->first == 1);
  CHECK(*first->second == "a");
  REQUIRE(add(t, 3, 5s, "c"));
  auto second = t.take_oldest();
  REQUIRE(second);
  CHECK(second->first == 2);
  CHECK(*second->second == "b");
  CHECK(t.next_deadline() == t0 + 5s); // the taken entries left the deadline order too
  auto third = t.take_oldest();
  REQUIRE(third);
  CHECK(third->first == 3);
  CHECK_FALSE(t.take_oldest().has_value());
  CHECK(t.expire(t0 + 1h).empty());
}

TEST_CASE("a full table refuses the next request and leaves its value untouched", "[parking]") {
  table t{3};
  for (uint64_t id = 1; id <= 3; ++id)
    REQUIRE(add(t, id, 10s, "r" + std::to_string(id)));
  CHECK(t.full());
  auto v = make("fourth");
  CHECK_FALSE(t.add(4, t0 + 1s, v));
  REQUIRE(v); // the caller still holds it, to answer errc::overloaded
  CHECK(*v == "fourth");
  CHECK(t.size() == 3);
  CHECK_FALSE(t.contains(4));
  CHECK(t.next_deadline() == t0 + 10s); // the refused deadline left no trace
  SECTION("a served request makes room again") {
    t.take_oldest();
    CHECK_FALSE(t.full());
    CHECK(t.add(4, t0 + 1s, v));
    CHECK_FALSE(v); // moved into the table
    CHECK(show(t.take_all()) == "2=r2 3=r3 4=fourth");
  }
  SECTION("an expired request makes room again") {
    REQUIRE(add(t, 9, 0s, "x") == false);
    t.take(2);
    REQUIRE(add(t, 9, 1s, "x"));
    CHECK(show(t.expire(t0 + 1s)) == "9=x");
    CHECK(t.add(4, t0 + 1s, v));
  }
}

TEST_CASE("a capacity of 0 is treated as 1", "[parking]") {
  table t{0};
  CHECK(t.capacity() == 1);
  CHECK(add(t, 1, 1s, "a"));
  CHECK(t.full());
  CHECK_FALSE(add(t, 2, 1s, "b"));
}

TEST_CASE("a duplicate id is refused while the first entry lives, with the value untouched",
          "[parking]") {
  table t{10};
  REQUIRE(add(t, 7, 10s, "first"));
  auto v = make("second");
  CHECK_FALSE(t.add(7, t0 + 1s, v));
  REQUIRE(v);
  CHECK(*v == "second");
  CHECK(t.size() == 1);
  CHECK(t.next_deadline() == t0 + 10s);
  CHECK(**t.take(7) == "first");
  SECTION("and accepted once it left") {
    CHECK(t.add(7, t0 + 1s, v));
    CHECK(show(t.expire(t0 + 1s)) == "7=second");
  }
}

TEST_CASE("expire returns what is due, earliest deadline first, ties by id", "[parking]") {
  table t{10};
  REQUIRE(add(t, 5, 20s, "e"));
  REQUIRE(add(t, 2, 10s, "b"));
  REQUIRE(add(t, 9, 10s, "i"));
  REQUIRE(add(t, 1, 10s, "a"));
  REQUIRE(add(t, 3, 5s, "c"));
  REQUIRE(add(t, 4, 30s, "d"));
  CHECK(t.expire(t0 + 5s - 1ns).empty());  // never before the deadline
  CHECK(show(t.expire(t0 + 5s)) == "3=c"); // at the deadline
  CHECK(show(t.expire(t0 + 20s)) == "1=a 2=b 9=i 5=e");
  CHECK(t.size() == 1);
  CHECK(t.next_deadline() == t0 + 30s);
  CHECK_FALSE(t.take(9).has_value());
}

TEST_CASE("rearm asks for one timer at the earliest deadline, and for another only when an "
          "earlier deadline arrives",
          "[parking]") {
  table t{10};
  REQUIRE(add(t, 1, 20s, "a"));
  CHECK(t.rearm() == t0 + 20s);
  CHECK_FALSE(t.rearm().has_value()); // armed already
  REQUIRE(add(t, 2, 30s, "b"));
  CHECK_FALSE(t.rearm().has_value()); // later: the armed timer comes first
  REQUIRE(add(t, 3, 20s, "c"));
  CHECK_FALSE(t.rearm().has_value()); // same time: covered
  REQUIRE(add(t, 4, 10s, "d"));
  CHECK(t.rearm() == t0 + 10s); // earlier: one more timer
  CHECK_FALSE(t.rearm().has_value());
  // The timer for 10 s fires: it expires d and forgets itself; the one for 20 s still runs.
  CHECK(show(t.expire(t0 + 10s)) == "4=d");
  CHECK(t.rearm() == t0 + 20s); // the table cannot know the 20 s timer still runs: one more
  CHECK(show(t.expire(t0 + 20s)) == "1=a 3=c");
  CHECK(t.rearm() == t0 + 30s);
  CHECK(t.expire(t0 + 20s).empty());  // the duplicate 20 s timer: harmless
  CHECK_FALSE(t.rearm().has_value()); // and the 30 s timer is still armed
  CHECK(show(t.expire(t0 + 30s)) == "2=b");
  CHECK_FALSE(t.rearm().has_value());
}

TEST_CASE("stale and early timers cost an empty expire, never a lost deadline", "[parking]") {
  table t{10};
  REQUIRE(add(t, 1, 10s, "a"));
  REQUIRE(add(t, 2, 20s, "b"));
  REQUIRE(t.rearm() == t0 + 10s);
  SECTION("the entry the timer was armed for was served meanwhile") {
    t.take_oldest();
    CHECK(t.expire(t0 + 10s).empty()); // the timer turns out early
    CHECK(t.rearm() == t0 + 20s);      // and the next deadline gets its own
    CHECK(show(t.expire(t0 + 20s)) == "2=b");
  }
  SECTION("every entry was served meanwhile, then a later one was parked") {
    t.take_all();
    REQUIRE(add(t, 3, 30s, "c"));
    CHECK_FALSE(t.rearm().has_value()); // the 10 s timer still comes, and rearms then
    CHECK(t.expire(t0 + 10s).empty());
    CHECK(t.rearm() == t0 + 30s);
    CHECK(show(t.expire(t0 + 30s)) == "3=c");
  }
  SECTION("a stale timer of an older arm arrives before the armed one") {
    REQUIRE(show(t.expire(t0 + 10s)) == "1=a");
    REQUIRE(t.rearm() == t0 + 20s);
    CHECK(t.expire(t0 + 15s).empty()); // not the armed one: it stays armed
    CHECK_FALSE(t.rearm().has_value());
    CHECK(show(t.expire(t0 + 20s)) == "2=b");
  }
  SECTION("a late timer expires everything due, in order") {
    REQUIRE(add(t, 3, 15s, "c"));
    CHECK(show(t.expire(t0 + 1min)) == "1=a 3=c 2=b");
    CHECK_FALSE(t.rearm().has_value());
    CHECK(t.empty());
  }
  SECTION("a deadline already past asks for a timer at once") {
    REQUIRE(add(t, 3, -5s, "c"));
    CHECK(t.rearm() == t0 - 5s);
    CHECK(show(t.expire(t0)) == "3=c");
    CHECK(t.rearm() == t0 + 10s);
  }
}

TEST_CASE("100000 parked requests are added and expired in one go", "[parking]") {
  // Every operation is O(log n): this finishes at once in any build; a linear scan per
  // operation (10^10 steps) would not. No timing is asserted.
  constexpr uint64_t n = 100'000;
  std::vector<uint64_t> slots(n);
  std::iota(slots.begin(), slots.end(), 0);
  std::mt19937 rng{42};
  std::shuffle(slots.begin(), slots.end(), rng);
  table t{n};
  bool added = true;
  for (uint64_t id = 1; id <= n; ++id) // deadlines in random order, two entries per millisecond
    added = add(t, id, std::chrono::milliseconds(slots[id - 1] / 2), std::to_string(id)) && added;
  REQUIRE(added);
  CHECK(t.full());
  CHECK(t.rearm() == t0);
  SECTION("expired at once, in deadline order, ties by id") {
    auto out = t.expire(t0 + 1h);
    REQUIRE(out.size() == n);
    bool ordered = true;
    for (size_t i = 1; i < n; ++i) {
      auto key = [&](size_t k) { return std::pair{slots[out[k].first - 1] / 2, out[k].first}; };
      ordered = ordered && key(i - 1) < key(i);
    }
    CHECK(ordered);
    CHECK(*out.front().second == std::to_string(out.front().first));
    CHECK(t.empty());
    CHECK_FALSE(t.rearm().has_value());
  }
  SECTION("expired one timer at a time, each rearm naming the next deadline") {
    size_t expired = 0;
    size_t timers = 0;
    bool two_each = true;
    for (auto next = std::optional<steady_time>{t0}; next; next = t.rearm()) {
      ++timers;
      auto out = t.expire(*next);
      two_each = two_each && out.size() == 2 && *next == t0 + (timers - 1) * 1ms;
      expired += out.size();
    }
    CHECK(two_each);
    CHECK(expired == n);
    CHECK(timers == n / 2);
  }
  SECTION("served one at a time in arrival order") {
    bool fifo = true;
    for (uint64_t id = 1; id <= n; ++id)
      fifo = fifo && t.take_oldest()->first == id;
    CHECK(fifo);
    CHECK(t.empty());
    CHECK(t.expire(t0 + 1h).empty());
  }
}

// -- [request-table]: a connection's requests in flight ------------------------------------------

TEST_CASE("a request completes by its token exactly once", "[request-table]") {
  table t{100};
  REQUIRE(add(t, 11, 5s, "req-11"));
  REQUIRE(add(t, 12, 5s, "req-12"));
  auto reply = t.take(12);
  REQUIRE(reply);
  REQUIRE(*reply);
  CHECK(**reply == "req-12");
  CHECK_FALSE(t.contains(12));
  CHECK_FALSE(t.take(12).has_value()); // a second reply finds nothing
  CHECK(t.size() == 1);
  CHECK(show(t.expire(t0 + 5s)) == "11=req-11"); // the completed one does not expire
}

TEST_CASE("a reply for an unknown token finds nothing and changes nothing", "[request-table]") {
  table t{100};
  REQUIRE(add(t, 1, 5s, "a"));
  CHECK_FALSE(t.take(0).has_value());
  CHECK_FALSE(t.take(2).has_value());
  CHECK(t.size() == 1);
  CHECK(t.next_deadline() == t0 + 5s);
}

TEST_CASE("requests in flight expire at their deadlines, and a late reply finds nothing",
          "[request-table]") {
  table t{100};
  REQUIRE(add(t, 1, 2s, "a"));
  REQUIRE(add(t, 2, 1s, "b"));
  REQUIRE(t.rearm() == t0 + 1s);
  CHECK(show(t.expire(t0 + 1s)) == "2=b");
  CHECK(t.rearm() == t0 + 2s);
  CHECK_FALSE(t.take(2).has_value()); // the reply arrives after the timeout was answered
  CHECK(show(t.expire(t0 + 2s)) == "1=a");
  CHECK_FALSE(t.take(1).has_value());
  CHECK(t.empty());
}

TEST_CASE("completing the earliest request keeps the timer protocol for the others",
          "[request-table]") {
  table t{100};
  REQUIRE(add(t, 1, 1s, "a"));
  REQUIRE(add(t, 2, 3s, "b"));
  REQUIRE(t.rearm() == t0 + 1s);
  REQUIRE(t.take(1));
  CHECK_FALSE(t.rearm().has_value()); // the 1 s timer still comes
  CHECK(t.expire(t0 + 1s).empty());
  CHECK(t.rearm() == t0 + 3s);
  CHECK(show(t.expire(t0 + 3s)) == "2=b");
}

TEST_CASE("take_all on close returns every request in flight, and the table lives on",
          "[request-table]") {
  table t{100};
  REQUIRE(add(t, 3, 9s, "c"));
  REQUIRE(add(t, 1, 5s, "a"));
  REQUIRE(add(t, 2, 1s, "b"));
  REQUIRE(t.rearm() == t0 + 1s);
  CHECK(show(t.take_all()) == "1=a 2=b 3=c");
  CHECK(t.empty());
  CHECK_FALSE(t.take(1).has_value()); // a late reply after the close finds nothing
  CHECK(t.expire(t0 + 1s).empty());   // the armed timer arrives: nothing to expire
  CHECK_FALSE(t.rearm().has_value());
  REQUIRE(add(t, 4, 2s, "d"));
  CHECK(t.rearm() == t0 + 2s);
  CHECK(show(t.expire(t0 + 2s)) == "4=d");
}

// -- randomized ---------------------------------------------------------------------------------

namespace {

/// The weights of the operations of a random sequence, in percent of the steps.
struct op_mix {
  size_t min_capacity, max_capacity;
  int add, take, take_oldest, take_all, advance, stray_timer;
};

/// One random sequence against a reference model. The actor's protocol is simulated: after an
/// add the table is rearmed, every time rearm returns becomes a pending timer that arrives at or
/// up to 2 ms after it (never before), and each arrival calls expire and rearm. The first
/// violation is kept in `error`.
class table_run {
 public:
  table_run(std::mt19937& rng, const op_mix& mix)
    : rng_(rng), mix_(mix), table_(uniform(mix.min_capacity, mix.max_capacity)) {
    capacity_ = table_.capacity();
  }

  void step() {
    int r = static_cast<int>(uniform(0, 99));
    if ((r -= mix_.add) < 0)
      add();
    else if ((r -= mix_.take) < 0)
      take();
    else if ((r -= mix_.take_oldest) < 0)
      take_oldest();
    else if ((r -= mix_.take_all) < 0)
      take_all();
    else if ((r -= mix_.advance) < 0)
      advance(std::chrono::milliseconds(uniform(0, 3000)));
    else
      timer_arrives(now_); // a timer left over from elsewhere, e.g. an older table
    check_armed();
  }

  /// Lets time run until no timer is pending: the timers alone must expire everything left.
  void drain() {
    while (!timers_.empty())
      advance(*timers_.begin() - now_ + 1ms);
    expect(model_.empty() && table_.empty(), "entries outlived every timer");
    expect(returned_ == added_,
           "added " + std::to_string(added_) + ", returned " + std::to_string(returned_));
  }

  const std::string& error() const { return error_; }
  size_t operations() const { return operations_; }

 private:
  struct ref {
    uint64_t id;
    steady_time deadline;
    uint64_t serial;
  };

  uint64_t uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  void expect(bool ok, const std::string& what) {
    if (!ok && error_.empty())
      error_ = what + " (operation " + std::to_string(operations_) + ")";
  }

  std::vector<ref>::iterator find(uint64_t id) {
    return std::find_if(model_.begin(), model_.end(), [id](const ref& x) { return x.id == id; });
  }

  /// A live id (70 %) or one that is not (a fresh one, or one that left).
  uint64_t some_id() {
    if (!model_.empty() && uniform(0, 9) < 7)
      return model_[uniform(0, model_.size() - 1)].id;
    return uniform(1, next_id_ + 1);
  }

  /// Checks one returned entry against the model, counts it, and drops it from the model.
  void returned(uint64_t id, const value& v) {
    auto it = find(id);
    expect(it != model_.end(), "returned id " + std::to_string(id) + " that is not live");
    expect(v != nullptr, "returned an empty value");
    if (it == model_.end() || v == nullptr)
      return;
    expect(*v == std::to_string(it->serial), "id " + std::to_string(id) + " has another value");
    expect(seen_.insert(it->serial).second, "returned twice");
    ++returned_;
    model_.erase(it);
  }

  void returned_all(const std::vector<std::pair<uint64_t, value>>& out) {
    for (const auto& [id, v] : out)
      returned(id, v);
  }

  void add() {
    ++operations_;
    // Ids mostly increase (arrival order); sometimes a live id comes again.
    uint64_t id = !model_.empty() && uniform(0, 19) == 0 ? some_id() : ++next_id_;
    auto deadline = now_ + std::chrono::milliseconds(uniform(0, 5000)) - 500ms;
    auto serial = next_serial_++;
    auto v = make(std::to_string(serial));
    bool expected = model_.size() < capacity_ && find(id) == model_.end();
    bool ok = table_.add(id, deadline, v);
    expect(ok == expected, ok ? "accepted an entry to refuse" : "refused an entry to accept");
    if (ok) {
      expect(v == nullptr, "an accepted value was not moved");
      model_.push_back({id, deadline, serial});
      ++added_;
    } else {
      expect(v != nullptr && *v == std::to_string(serial), "a refused value was touched");
    }
    rearm();
  }

  void take() {
    ++operations_;
    auto id = some_id();
    bool live = find(id) != model_.end();
    auto out = table_.take(id);
    expect(out.has_value() == live, "take found " + std::string{out ? "an entry" : "nothing"}
                                      + " for id " + std::to_string(id));
    if (out)
      returned(id, *out);
    maybe_rearm();
  }

  void take_oldest() {
    ++operations_;
    auto oldest = std::min_element(model_.begin(), model_.end(),
                                   [](const ref& a, const ref& b) { return a.id < b.id; });
    auto out = table_.take_oldest();
    expect(out.has_value() == !model_.empty(), "take_oldest disagrees with the model");
    if (out) {
      expect(out->first == oldest->id, "take_oldest did not return the smallest id");
      returned(out->first, out->second);
    }
    maybe_rearm();
  }

  void take_all() {
    ++operations_;
    auto ids = sorted_ids(model_);
    auto out = table_.take_all();
    std::vector<uint64_t> got;
    for (const auto& x : out)
      got.push_back(x.first);
    expect(got == ids, "take_all is not every entry in id order");
    returned_all(out);
    expect(table_.empty(), "take_all left entries");
    maybe_rearm();
  }

  static std::vector<uint64_t> sorted_ids(std::vector<ref> xs) {
    std::sort(xs.begin(), xs.end(), [](const ref& a, const ref& b) { return a.id < b.id; });
    std::vector<uint64_t> ids;
    for (const auto& x : xs)
      ids.push_back(x.id);
    return ids;
  }

  /// Time runs by `d`: the pending timers due meanwhile arrive in order, each a little late.
  void advance(caf::timespan d) {
    auto target = now_ + d;
    while (!timers_.empty() && *timers_.begin() <= target) {
      auto due = *timers_.begin();
      timers_.erase(timers_.begin());
      timer_arrives(std::max(now_, due) + std::chrono::microseconds(uniform(0, 2000)));
    }
    now_ = std::max(now_, target);
    // Every timer due by now has arrived, so every deadline passed has been answered.
    for (const auto& x : model_)
      expect(x.deadline > now_, "an entry is overdue: no timer expired it");
  }

  void timer_arrives(steady_time at) {
    ++operations_;
    now_ = at;
    std::vector<ref> due;
    for (const auto& x : model_)
      if (x.deadline <= now_)
        due.push_back(x);
    std::sort(due.begin(), due.end(), [](const ref& a, const ref& b) {
      return std::pair{a.deadline, a.id} < std::pair{b.deadline, b.id};
    });
    auto out = table_.expire(now_);
    expect(out.size() == due.size(), "expire returned " + std::to_string(out.size()) + " of "
                                       + std::to_string(due.size()) + " entries due");
    for (size_t i = 0; i < out.size() && i < due.size(); ++i)
      expect(out[i].first == due[i].id, "expire out of (deadline, id) order or before a deadline");
    returned_all(out);
    rearm();
  }

  void rearm() {
    auto at = table_.rearm();
    if (at) {
      expect(!model_.empty() && *at == earliest(), "rearm named another time than the earliest");
      timers_.insert(*at);
    }
    expect(!table_.rearm().has_value(), "a second rearm in a row asked for another timer");
  }

  /// Rearming after a removal is never needed, but allowed.
  void maybe_rearm() {
    if (uniform(0, 1) == 0)
      rearm();
  }

  steady_time earliest() const {
    return std::min_element(model_.begin(), model_.end(),
                            [](const ref& a, const ref& b) { return a.deadline < b.deadline; })
      ->deadline;
  }

  /// Whenever entries exist, a timer is pending at or before the earliest deadline.
  void check_armed() {
    expect(table_.size() == model_.size(), "size() disagrees with the model");
    if (model_.empty())
      return;
    expect(table_.next_deadline() == earliest(), "next_deadline() is not the earliest");
    expect(!timers_.empty() && *timers_.begin() <= earliest(),
           "no timer pending at or before the earliest deadline");
  }

  std::mt19937& rng_;
  op_mix mix_;
  table table_;
  size_t capacity_;
  std::vector<ref> model_;            ///< live entries, in the order added
  std::multiset<steady_time> timers_; ///< times rearm returned whose timer has not arrived
  std::set<uint64_t> seen_;           ///< serials of the entries returned so far
  size_t added_ = 0;
  size_t returned_ = 0;
  uint64_t next_id_ = 0;
  uint64_t next_serial_ = 0;
  size_t operations_ = 0;
  steady_time now_ = t0;
  std::string error_;
};

/// Runs 4000 random sequences of `mix` (8 seeds x 500) and checks each.
void run_random_sequences(const op_mix& mix) {
  size_t operations = 0;
  int sequences = 0;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng{seed};
    for (int n = 0; n < 500; ++n) {
      INFO("sequence " << n);
      table_run run{rng, mix};
      auto length = std::uniform_int_distribution<int>(1, 150)(rng);
      for (int i = 0; i < length && run.error().empty(); ++i)
        run.step();
      if (run.error().empty())
        run.drain();
      if (!run.error().empty())
        FAIL(run.error());
      operations += run.operations();
      ++sequences;
    }
  }
  CHECK(sequences == 4000);
  CHECK(operations > 200'000u);
}

} // namespace

TEST_CASE("random parking sequences return every request exactly once and in time",
          "[parking][random]") {
  // Small bounds, so that refusals happen; served mostly oldest first or all at once.
  run_random_sequences(op_mix{1, 8, 40, 5, 15, 5, 30, 5});
}

TEST_CASE("random request-table sequences return every request exactly once and in time",
          "[request-table][random]") {
  // Completions by token dominate; a close (take_all) is rare.
  run_random_sequences(op_mix{64, 64, 40, 30, 0, 1, 25, 4});
}
