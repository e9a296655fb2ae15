// Tests of the pure core lease_pool: see its header. Time is driven by hand from a fixed t0.
#include "supervisors/lease_pool.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

using natsvisor::slot_availability;
using natsvisor::steady_time;

namespace {

/// A move-only waiter holding its own id: a grant or an answer that carries the wrong waiter, or a
/// refused request that consumed its waiter anyway, shows.
using waiter = std::unique_ptr<uint64_t>;
using pool = natsvisor::lease_pool<waiter>;
using answers = std::vector<std::pair<uint64_t, waiter>>;

/// An arbitrary fixed point in time, so that tests never read a clock.
const steady_time t0 = steady_time{} + std::chrono::hours(1000);

constexpr slot_availability all_availabilities[]
  = {slot_availability::stopped, slot_availability::starting, slot_availability::down,
     slot_availability::up, slot_availability::gave_up};

/// A request of waiter `id`. Like the supervisor, tests number waiters in arrival order: the
/// queue serves the smallest id first (base/deadline_table.hpp).
std::optional<pool::decisions> ask(pool& p, uint64_t id, steady_time deadline = t0 + 1h) {
  auto w = std::make_unique<uint64_t>(id);
  auto d = p.request(id, deadline, w);
  if (!d)
    CHECK((w != nullptr && *w == id)); // refused: the caller still holds its waiter
  return d;
}

/// A request that must queue: no grant, and growth starts `starts`.
void ask_queued(pool& p, uint64_t id, std::vector<uint32_t> starts = {},
                steady_time deadline = t0 + 1h) {
  auto d = ask(p, id, deadline);
  REQUIRE(d);
  CHECK(d->grants.empty());
  CHECK(d->start == starts);
}

/// The only grant of `d`, checked to carry its own waiter.
pool::grant only_grant(pool::decisions d) {
  REQUIRE(d.grants.size() == 1);
  auto g = std::move(d.grants.front());
  REQUIRE(g.waiter);
  CHECK(*g.waiter == g.waiter_id);
  return g;
}

/// A request that must be granted at once, on `slot`.
pool::grant ask_granted(pool& p, uint64_t id, uint32_t slot) {
  auto d = ask(p, id);
  REQUIRE(d);
  CHECK(d->start.empty());
  auto g = only_grant(std::move(*d));
  CHECK(g.waiter_id == id);
  CHECK(g.slot == slot);
  CHECK(p.holds(slot, g.lease));
  return g;
}

std::vector<uint64_t> ids_of(const answers& a) {
  std::vector<uint64_t> out;
  for (const auto& [id, w] : a) {
    REQUIRE(w);
    CHECK(*w == id);
    out.push_back(id);
  }
  return out;
}

/// A pool whose slots 1..`up` are connected and idle.
pool with_up_slots(size_t size, size_t max_waiters, uint32_t up) {
  pool p{size, max_waiters};
  for (uint32_t s = 1; s <= up; ++s)
    CHECK(p.update(s, slot_availability::up).grants.empty());
  return p;
}

} // namespace

TEST_CASE("an idle slot is granted at once, the lowest-numbered first", "[lease-pool]") {
  pool p{3, 10};
  p.update(3, slot_availability::up);
  p.update(2, slot_availability::up);
  CHECK(p.idle() == 2);
  auto a = ask_granted(p, 1, 2);
  auto b = ask_granted(p, 2, 3);
  CHECK(a.lease == 1);
  CHECK(b.lease == 2);
  CHECK(p.waits() == 0);
  CHECK(p.started() == 0);
  CHECK(p.active() == 2);
  CHECK(p.idle() == 0);
  CHECK(p.size() == 2);
  CHECK(p.capacity() == 3);
}

TEST_CASE("a request without an idle slot waits and starts a stopped slot", "[lease-pool]") {
  pool p{3, 10};
  ask_queued(p, 1, {1});
  CHECK(p.availability(1) == slot_availability::starting);
  CHECK(p.waits() == 1);
  CHECK(p.started() == 1);
  CHECK(p.size() == 1);
  ask_queued(p, 2, {2});
  auto a = only_grant(p.update(1, slot_availability::up));
  CHECK(a.waiter_id == 1);
  CHECK(a.slot == 1);
  auto b = only_grant(p.update(2, slot_availability::up));
  CHECK(b.waiter_id == 2);
  CHECK(b.slot == 2);
  CHECK(b.lease > a.lease);
  CHECK(p.waiting() == 0);
  CHECK(p.availability(3) == slot_availability::stopped);
}

TEST_CASE("waiters are served oldest first", "[lease-pool]") {
  auto p = with_up_slots(1, 10, 1);
  auto held = ask_granted(p, 100, 1);
  for (uint64_t id : {1, 2, 3})
    ask_queued(p, id); // the only slot exists: nothing to start
  uint64_t last_lease = held.lease;
  for (uint64_t id : {1, 2, 3}) {
    auto g = only_grant(p.release(1, last_lease));
    CHECK(g.waiter_id == id);
    CHECK(g.slot == 1);
    CHECK(g.lease > last_lease);
    last_lease = g.lease;
  }
  CHECK(p.waits() == 3);
}

TEST_CASE("an update to up serves the oldest waiter", "[lease-pool]") {
  pool p{2, 10};
  ask_queued(p, 1, {1});
  ask_queued(p, 2, {2});
  ask_queued(p, 3);
  CHECK(only_grant(p.update(2, slot_availability::up)).waiter_id == 1);
  CHECK(only_grant(p.update(1, slot_availability::up)).waiter_id == 2);
  CHECK(p.waiting() == 1);
}

TEST_CASE("growth starts slots up to size and not beyond", "[lease-pool]") {
  pool p{2, 10};
  ask_queued(p, 1, {1});
  ask_queued(p, 2, {2});
  for (uint64_t id = 3; id <= 6; ++id)
    ask_queued(p, id);
  CHECK(p.started() == 2);
  CHECK(p.size() == 2);
  CHECK(p.waiting() == 6);
  CHECK(p.availability(3) == slot_availability::stopped); // outside 1..size
}

TEST_CASE("growth counts unleased slots on their way up", "[lease-pool]") {
  pool p{3, 10};
  SECTION("a starting slot will serve one waiter") {
    p.update(1, slot_availability::starting);
    ask_queued(p, 1);
    ask_queued(p, 2, {2});
  }
  SECTION("a down slot will serve one waiter") {
    p.update(1, slot_availability::up);
    p.update(1, slot_availability::down);
    ask_queued(p, 1);
    ask_queued(p, 2, {2});
  }
  SECTION("a leased slot that went down keeps its lease and serves nobody else") {
    p.update(1, slot_availability::up);
    ask_granted(p, 1, 1);
    p.update(1, slot_availability::down);
    ask_queued(p, 2, {2});
  }
  CHECK(p.started() == 1);
}

TEST_CASE("a slot that stops while starting is started again for its waiter", "[lease-pool]") {
  pool p{2, 10};
  ask_queued(p, 1, {1});
  auto d = p.update(1, slot_availability::stopped);
  CHECK(d.grants.empty());
  CHECK(d.start == std::vector<uint32_t>{1}); // the lowest-numbered stopped slot
  CHECK(p.started() == 2);
}

TEST_CASE("a slot that gave up is never started again", "[lease-pool]") {
  pool p{2, 10};
  ask_queued(p, 1, {1});
  auto d = p.update(1, slot_availability::gave_up);
  CHECK(d.start == std::vector<uint32_t>{2}); // growth replaces it
  CHECK_FALSE(p.all_gave_up());
  d = p.update(2, slot_availability::gave_up);
  CHECK(d.start.empty());
  CHECK(d.grants.empty());
  CHECK(p.all_gave_up());
  ask_queued(p, 2); // nothing left to start
  CHECK(p.started() == 2);
  CHECK(p.size() == 2); // slots that gave up still exist
  CHECK(ids_of(p.take_waiters()) == std::vector<uint64_t>{1, 2});
}

TEST_CASE("all_gave_up holds only while every slot gave up", "[lease-pool]") {
  pool p{3, 1};
  CHECK_FALSE(p.all_gave_up());
  p.update(1, slot_availability::gave_up);
  p.update(2, slot_availability::gave_up);
  CHECK_FALSE(p.all_gave_up()); // slot 3 never started
  p.update(3, slot_availability::gave_up);
  CHECK(p.all_gave_up());
  p.update(3, slot_availability::up); // the URL was reset
  CHECK_FALSE(p.all_gave_up());
}

TEST_CASE("a stale or second release is ignored", "[lease-pool]") {
  auto p = with_up_slots(2, 10, 2);
  auto a = ask_granted(p, 1, 1);
  auto b = ask_granted(p, 2, 2);
  ask_queued(p, 3);
  CHECK(p.release(1, a.lease + 100).grants.empty()); // unknown lease
  CHECK(p.release(1, b.lease).grants.empty());       // another slot's lease
  CHECK(p.release(1, 0).grants.empty());             // "not leased" is no lease
  CHECK(p.release(0, a.lease).grants.empty());       // outside 1..size
  CHECK(p.release(3, a.lease).grants.empty());
  CHECK(p.holds(1, a.lease));
  CHECK(p.active() == 2);
  auto c = only_grant(p.release(1, a.lease));
  CHECK(c.waiter_id == 3);
  CHECK(p.release(1, a.lease).grants.empty()); // second return of a loan now served elsewhere
  CHECK(p.holds(1, c.lease));
  CHECK_FALSE(p.holds(1, a.lease));
  CHECK(p.active() == 2);
}

TEST_CASE("a leased slot keeps its lease while its connection goes down and up", "[lease-pool]") {
  auto p = with_up_slots(1, 10, 1);
  auto a = ask_granted(p, 1, 1);
  ask_queued(p, 2);
  for (auto av : all_availabilities) {
    INFO("availability " << static_cast<int>(av));
    auto d = p.update(1, av);
    CHECK(d.grants.empty());
    CHECK(d.start.empty()); // a leased slot is not "stopped" for growth's sake either
    CHECK(p.holds(1, a.lease));
    CHECK(p.active() == 1);
    CHECK(p.idle() == 0);
  }
  p.update(1, slot_availability::down);
  CHECK(p.release(1, a.lease).grants.empty()); // returned while down: no grant yet
  CHECK(p.idle() == 0);
  CHECK(only_grant(p.update(1, slot_availability::up)).waiter_id == 2);
}

TEST_CASE("a leased slot that stopped is not started for waiters", "[lease-pool]") {
  auto p = with_up_slots(2, 10, 1);
  auto a = ask_granted(p, 1, 1);
  p.update(1, slot_availability::stopped);
  // Slot 1 would come up for its holder and serve no waiter: slot 2 starts instead.
  ask_queued(p, 2, {2});
  CHECK(p.release(1, a.lease).start.empty()); // slot 2 is on its way up for waiter 2
  // Unleased now, slot 1 can serve the next waiter.
  ask_queued(p, 3, {1});
}

TEST_CASE("the waiter queue is bounded and refuses without consuming the waiter", "[lease-pool]") {
  auto p = with_up_slots(1, 2, 1);
  ask_granted(p, 1, 1);
  ask_queued(p, 2);
  ask_queued(p, 3);
  CHECK_FALSE(ask(p, 4)); // ask() checks the waiter came back
  CHECK(p.waiting() == 2);
  CHECK(p.waits() == 2);
}

TEST_CASE("a waiter id already queued is refused", "[lease-pool]") {
  pool p{1, 5};
  ask_queued(p, 9, {1});
  CHECK_FALSE(ask(p, 9));
  CHECK(p.waiting() == 1);
  CHECK(p.waits() == 1);
}

TEST_CASE("waiters expire in deadline order and are counted", "[lease-pool]") {
  auto p = with_up_slots(1, 10, 1);
  auto held = ask_granted(p, 100, 1);
  ask_queued(p, 1, {}, t0 + 3s);
  ask_queued(p, 2, {}, t0 + 1s);
  ask_queued(p, 3, {}, t0 + 2s);
  ask_queued(p, 4, {}, t0 + 2s);
  ask_queued(p, 5, {}, t0 + 10s);
  CHECK(p.expire(t0 + 500ms).empty());
  CHECK(ids_of(p.expire(t0 + 2s)) == std::vector<uint64_t>{2, 3, 4}); // ties by arrival
  CHECK(p.timeouts() == 3);
  CHECK(ids_of(p.expire(t0 + 3s)) == std::vector<uint64_t>{1});
  CHECK(p.timeouts() == 4);
  CHECK(only_grant(p.release(1, held.lease)).waiter_id == 5);
  CHECK(p.expire(t0 + 1h).empty()); // a granted waiter never expires
  CHECK(p.timeouts() == 4);
}

TEST_CASE("rearm gives one timer, for the earliest deadline", "[lease-pool]") {
  auto p = with_up_slots(1, 10, 1);
  auto held = ask_granted(p, 100, 1);
  CHECK_FALSE(p.rearm()); // no waiter
  ask_queued(p, 1, {}, t0 + 5s);
  CHECK(p.rearm() == t0 + 5s);
  CHECK_FALSE(p.rearm()); // armed already
  ask_queued(p, 2, {}, t0 + 9s);
  CHECK_FALSE(p.rearm()); // the armed timer comes first
  ask_queued(p, 3, {}, t0 + 2s);
  CHECK(p.rearm() == t0 + 2s);
  CHECK(ids_of(p.expire(t0 + 2s)) == std::vector<uint64_t>{3});
  CHECK(p.rearm() == t0 + 5s);
  only_grant(p.release(1, held.lease)); // waiter 1 served: its timer is stale now
  CHECK(p.expire(t0 + 5s).empty());     // the stale timer costs one empty expire
  CHECK(p.rearm() == t0 + 9s);
}

TEST_CASE("take_waiters answers every waiter in arrival order", "[lease-pool]") {
  auto p = with_up_slots(1, 10, 1);
  auto held = ask_granted(p, 100, 1);
  ask_queued(p, 1, {}, t0 + 3s);
  ask_queued(p, 2, {}, t0 + 1s);
  ask_queued(p, 3, {}, t0 + 2s);
  CHECK(ids_of(p.take_waiters()) == std::vector<uint64_t>{1, 2, 3}); // arrival, not deadline
  CHECK(p.waiting() == 0);
  CHECK(p.take_waiters().empty());
  CHECK(p.expire(t0 + 1h).empty());
  CHECK(p.timeouts() == 0);
  CHECK(p.release(1, held.lease).grants.empty());
  CHECK(p.idle() == 1);
}

TEST_CASE("slots outside 1..size are ignored", "[lease-pool]") {
  pool p{2, 10};
  for (uint32_t slot : {0u, 3u, 1000u}) {
    auto d = p.update(slot, slot_availability::up);
    CHECK(d.grants.empty());
    CHECK(d.start.empty());
    CHECK(p.availability(slot) == slot_availability::stopped);
    CHECK_FALSE(p.holds(slot, 1));
  }
  CHECK(p.size() == 0);
  CHECK(p.idle() == 0);
}

// ---- Randomized: random operations checked against a model after every step. -------------

namespace {

/// What the test knows from the pool's answers alone, and the invariants those answers obey.
/// Every check returns a description of the first violation, or an empty string.
class pool_model {
 public:
  pool_model(size_t size, size_t max_waiters)
    : size_(size), max_waiters_(max_waiters), availability_(size + 1) {}

  /// The supervisor reports `a` for `slot` (the model only tracks slots 1..size).
  void reported(uint32_t slot, slot_availability a) {
    if (slot >= 1 && slot <= size_)
      availability_[slot] = a;
  }

  void queued(uint64_t id, steady_time deadline) {
    waiting_[id] = deadline;
    ++waits_;
  }

  std::string refused(const pool& p, uint64_t id) const {
    if (waiting_.count(id) == 0 && p.waiting() < max_waiters_)
      return "a new request was refused with room in the queue";
    return {};
  }

  /// Applies a pool's decisions. `asked` is a request still to be answered (granted, else queued).
  std::string apply(pool::decisions d, const std::optional<uint64_t>& asked = std::nullopt) {
    for (auto& g : d.grants) {
      if (!g.waiter || *g.waiter != g.waiter_id)
        return "a grant carries another waiter";
      if (g.slot < 1 || g.slot > size_)
        return "a grant of slot " + std::to_string(g.slot) + " outside 1..size";
      if (leases_.count(g.slot) != 0)
        return "slot " + std::to_string(g.slot) + " leased twice at once";
      if (availability_[g.slot] != slot_availability::up)
        return "slot " + std::to_string(g.slot) + " granted while not up";
      if (g.lease <= last_lease_)
        return "lease ids do not increase";
      if (g.waiter_id == asked && !asked_answered_)
        asked_answered_ = true;
      else if (waiting_.erase(g.waiter_id) == 0)
        return "waiter " + std::to_string(g.waiter_id) + " granted but not waiting";
      last_lease_ = g.lease;
      leases_[g.slot] = g.lease;
      step_.granted_slot = std::max(step_.granted_slot, g.slot);
      step_.granted_waiter = std::max(step_.granted_waiter, g.waiter_id);
    }
    for (auto slot : d.start) {
      if (slot < 1 || slot > size_)
        return "a start of slot " + std::to_string(slot) + " outside 1..size";
      if (availability_[slot] != slot_availability::stopped || leases_.count(slot) != 0)
        return "slot " + std::to_string(slot) + " started but not stopped, or leased";
      availability_[slot] = slot_availability::starting;
      ++started_;
      step_.started_slot = std::max(step_.started_slot, slot);
    }
    return {};
  }

  /// Whether the request passed to the last apply() was granted (else it is queued now).
  bool take_asked_answered() { return std::exchange(asked_answered_, false); }

  /// Answers (expired or taken): each must be a waiting waiter, removed here.
  std::string answered(const answers& a) {
    for (const auto& [id, w] : a) {
      if (!w || *w != id)
        return "an answer carries another waiter";
      if (waiting_.erase(id) == 0)
        return "waiter " + std::to_string(id) + " answered but not waiting";
    }
    return {};
  }

  /// The timer fired at `now` and the pool answered `a`: exactly the due waiters, earliest
  /// deadline first (ties by id).
  std::string expired(const answers& a, steady_time now) {
    if (armed_ && *armed_ <= now)
      armed_.reset();
    std::vector<std::pair<steady_time, uint64_t>> expect;
    for (const auto& [id, deadline] : waiting_)
      if (deadline <= now)
        expect.emplace_back(deadline, id);
    std::sort(expect.begin(), expect.end());
    std::vector<std::pair<steady_time, uint64_t>> got;
    for (const auto& entry : a) {
      auto it = waiting_.find(entry.first);
      if (it == waiting_.end())
        return "waiter " + std::to_string(entry.first) + " expired but not waiting";
      got.emplace_back(it->second, entry.first);
    }
    if (got != expect)
      return "expire did not answer exactly the due waiters in deadline order";
    timeouts_ += a.size();
    return answered(a);
  }

  /// The one-timer protocol: a timer for the earliest deadline unless one is armed no later.
  std::string rearmed(std::optional<steady_time> got) {
    std::optional<steady_time> earliest;
    for (const auto& entry : waiting_)
      if (!earliest || entry.second < *earliest)
        earliest = entry.second;
    auto expect = earliest && !(armed_ && *armed_ <= *earliest) ? earliest : std::nullopt;
    if (got != expect)
      return "rearm did not arm exactly one timer for the earliest deadline";
    if (got)
      armed_ = got;
    return {};
  }

  void released(uint32_t slot) { leases_.erase(slot); }

  std::optional<uint64_t> lease_of(uint32_t slot) const {
    auto it = leases_.find(slot);
    return it == leases_.end() ? std::nullopt : std::optional<uint64_t>{it->second};
  }

  /// A random live lease, if any, as (slot, lease).
  std::optional<std::pair<uint32_t, uint64_t>> some_lease(std::mt19937& rng) const {
    if (leases_.empty())
      return std::nullopt;
    auto it = leases_.begin();
    std::advance(it, std::uniform_int_distribution<size_t>{0, leases_.size() - 1}(rng));
    return *it;
  }

  std::optional<uint64_t> some_waiter(std::mt19937& rng) const {
    if (waiting_.empty())
      return std::nullopt;
    auto it = waiting_.begin();
    std::advance(it, std::uniform_int_distribution<size_t>{0, waiting_.size() - 1}(rng));
    return it->first;
  }

  uint64_t last_lease() const { return last_lease_; }

  /// The invariants between two operations, and the choices of the operation that just ran.
  std::string check(const pool& p) {
    auto step = std::exchange(step_, {});
    size_t existing = 0;
    size_t pending = 0;
    size_t idle = 0;
    bool stopped_left = false;
    for (uint32_t slot = 1; slot <= size_; ++slot) {
      auto a = availability_[slot];
      if (p.availability(slot) != a)
        return "slot " + std::to_string(slot) + " availability differs from the reports";
      auto lease = lease_of(slot);
      // With active() checked below, this also proves no slot holds a lease not granted.
      if (lease && !p.holds(slot, *lease))
        return "slot " + std::to_string(slot) + " lost its lease before it was returned";
      existing += a != slot_availability::stopped;
      pending += !lease && (a == slot_availability::starting || a == slot_availability::down);
      idle += !lease && a == slot_availability::up;
      stopped_left = stopped_left || (!lease && a == slot_availability::stopped);
      // Slot numbers 0 mean "none decided": every slot passes.
      if (!lease && a == slot_availability::up && slot < step.granted_slot)
        return "slot " + std::to_string(slot) + " stayed idle while a higher one was granted";
      if (!lease && a == slot_availability::stopped && slot < step.started_slot)
        return "slot " + std::to_string(slot) + " stayed stopped while a higher one started";
    }
    if (!waiting_.empty() && waiting_.begin()->first < step.granted_waiter)
      return "a younger waiter was served before waiter " + std::to_string(waiting_.begin()->first);
    if (step.started_slot != 0 && pending > waiting_.size())
      return "growth started more slots than waiters need";
    if (p.idle() != idle)
      return "idle() is not the number of up and unleased slots";
    if (p.size() != existing || p.size() > size_)
      return "size() is not the number of slots that exist";
    if (p.active() != leases_.size())
      return "active() is not the number of live leases";
    if (p.waiting() != waiting_.size() || p.waiting() > max_waiters_)
      return "waiting() is not the number of waiters, or exceeds the bound";
    if (p.idle() != 0 && p.waiting() != 0)
      return "a slot is idle while a waiter waits";
    if (p.waiting() > pending && stopped_left)
      return "growth left an unleased stopped slot while waiters outnumber the slots on their "
             "way up";
    if (p.started() != started_ || p.timeouts() != timeouts_ || p.waits() != waits_)
      return "started(), timeouts() or waits() miscounted";
    return {};
  }

  size_t waiting() const { return waiting_.size(); }

 private:
  size_t size_;
  size_t max_waiters_;
  std::vector<slot_availability> availability_; ///< [slot], 0 unused
  std::map<uint32_t, uint64_t> leases_;         ///< live grants: slot -> lease
  std::map<uint64_t, steady_time> waiting_;     ///< waiter id -> deadline
  uint64_t last_lease_ = 0;
  uint64_t started_ = 0;
  uint64_t timeouts_ = 0;
  uint64_t waits_ = 0;
  std::optional<steady_time> armed_;
  bool asked_answered_ = false;
  /// The highest slot granted or started, and the youngest waiter granted, by the current step.
  struct step_choices {
    uint32_t granted_slot = 0;
    uint32_t started_slot = 0;
    uint64_t granted_waiter = 0;
  } step_;
};

/// One random sequence of `steps` operations on a pool of random size and bound, checked after
/// every step. Returns the first violation, or an empty string.
std::string run_random_sequence(uint32_t seed, int steps, std::string& trace) {
  std::mt19937 rng{seed};
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>{lo, hi}(rng); };
  const auto size = static_cast<size_t>(uniform(1, 5));
  const auto max_waiters = static_cast<size_t>(uniform(1, 6));
  pool p{size, max_waiters};
  pool_model m{size, max_waiters};
  std::ostringstream log;
  log << "pool(" << size << ", " << max_waiters << ")";
  steady_time now = t0;
  uint64_t next_id = 1;
  std::string problem;
  for (int step = 0; step < steps && problem.empty(); ++step) {
    const int op = uniform(0, 99);
    if (op < 30) { // request, rarely with an id still waiting (a duplicate must be refused)
      auto dup = op < 2 ? m.some_waiter(rng) : std::nullopt;
      const uint64_t id = dup ? *dup : next_id++;
      const auto deadline = now + std::chrono::milliseconds{uniform(0, 3000)};
      log << "; request " << id;
      auto w = std::make_unique<uint64_t>(id);
      auto d = p.request(id, deadline, w);
      if (!d) {
        problem = !w || *w != id ? "a refused request consumed its waiter" : m.refused(p, id);
      } else if (dup) {
        problem = "a duplicate waiter id was accepted";
      } else {
        problem = m.apply(std::move(*d), id);
        if (!m.take_asked_answered())
          m.queued(id, deadline);
      }
    } else if (op < 65) { // a report, biased to up so that grants happen
      const auto slot = static_cast<uint32_t>(uniform(0, static_cast<int>(size) + 1));
      const auto a = uniform(0, 2) == 0 ? slot_availability::up : all_availabilities[uniform(0, 4)];
      log << "; update " << slot << " " << static_cast<int>(a);
      m.reported(slot, a);
      problem = m.apply(p.update(slot, a));
    } else if (op < 85) { // release a live lease, or a stale, unknown or misplaced one
      auto live = m.some_lease(rng);
      auto slot = static_cast<uint32_t>(uniform(0, static_cast<int>(size) + 1));
      auto lease = static_cast<uint64_t>(uniform(0, static_cast<int>(m.last_lease()) + 2));
      if (live && uniform(0, 2) != 0)
        std::tie(slot, lease) = *live;
      log << "; release " << slot << " " << lease;
      const bool valid = m.lease_of(slot) == lease;
      if (valid)
        m.released(slot);
      auto d = p.release(slot, lease);
      if (!valid && (!d.grants.empty() || !d.start.empty()))
        problem = "an invalid release decided something";
      else
        problem = m.apply(std::move(d));
    } else if (op < 95) { // the timer fires, possibly late or stale
      now += std::chrono::milliseconds{uniform(0, 1500)};
      log << "; expire +" << std::chrono::duration_cast<std::chrono::milliseconds>(now - t0).count()
          << "ms";
      problem = m.expired(p.expire(now), now);
    } else if (op < 98) {
      log << "; rearm";
      problem = m.rearmed(p.rearm());
    } else {
      log << "; take_waiters";
      problem = m.answered(p.take_waiters());
    }
    if (problem.empty())
      problem = m.check(p);
  }
  // Every waiter still waiting is answered once at the end, and none is left behind.
  if (problem.empty())
    problem = m.answered(p.take_waiters());
  if (problem.empty() && m.waiting() != 0)
    problem = "a waiter was lost: never answered and no longer waiting";
  trace = log.str();
  return problem;
}

} // namespace

TEST_CASE("random operations keep every lease pool invariant", "[lease-pool]") {
  constexpr uint32_t sequences = 5000;
  constexpr int steps = 150;
  for (uint32_t seed = 1; seed <= sequences; ++seed) {
    std::string trace;
    auto problem = run_random_sequence(seed, steps, trace);
    INFO("seed " << seed << ": " << trace);
    REQUIRE(problem == "");
  }
}
