#pragma once

// A pure core (no actor, no clock, no nats.c): entries keyed by id, each with a deadline, bounded
// in size, served in arrival order or expired in deadline order, with ONE timer for the earliest
// deadline. It is the shape of three tables of natsvisor: requests parked while a URL's connection
// (re)starts (supervisors/), lease waiters (supervisors/lease_pool), and requests in flight on a
// connection (actors/request_table). Every operation is O(log n).
//
// The timer protocol: after changing the table, the actor calls `rearm()`; when it returns a time,
// the actor sends itself one delayed message for that time. When such a message arrives, the actor
// calls `expire(now)` and then `rearm()` again. Timers that turn out early or stale cost one empty
// `expire`, never a wrong answer.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "base/time.hpp"

namespace natsvisor {

template <class T>
class deadline_table {
 public:
  /// At most `capacity` entries at once (0 is treated as 1).
  explicit deadline_table(size_t capacity);

  /// Adds `value` under `id` (ids must be unique among live entries; a duplicate id is refused)
  /// with `deadline`. Returns false, leaving `value` untouched, when the table is full or the id is
  /// taken: the caller answers that request at once (e.g. errc::overloaded).
  bool add(uint64_t id, steady_time deadline, T& value);

  /// Removes and returns the entry `id`; nullopt if there is none (answered already).
  std::optional<T> take(uint64_t id);

  /// Removes and returns the entry that was added first (smallest id); nullopt when empty.
  std::optional<std::pair<uint64_t, T>> take_oldest();

  /// Removes and returns every entry, in arrival order (by id).
  std::vector<std::pair<uint64_t, T>> take_all();

  /// Removes and returns every entry whose deadline is at or before `now`, earliest deadline first
  /// (ties by id). Forgets an armed timer that is due at or before `now`.
  std::vector<std::pair<uint64_t, T>> expire(steady_time now);

  /// When a timer must be armed: the earliest deadline, if there is one and no timer is armed for
  /// it or for an earlier time. Records that a timer is armed for the returned time.
  std::optional<steady_time> rearm();

  /// The earliest deadline, if any.
  std::optional<steady_time> next_deadline() const;

  bool contains(uint64_t id) const;
  size_t size() const noexcept;
  bool empty() const noexcept;
  bool full() const noexcept;
  size_t capacity() const noexcept;

 private:
  struct entry {
    steady_time deadline;
    T value;
  };
  size_t capacity_;
  std::map<uint64_t, entry> by_id_;
  std::set<std::pair<steady_time, uint64_t>> by_deadline_;
  std::optional<steady_time> armed_;
};

} // namespace natsvisor

#include "base/deadline_table_impl.hpp"
