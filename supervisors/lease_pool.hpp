#pragma once

// The lease pool of one URL as a pure core (bb8's PoolInternals is the model): which pooled slot
// is leased, who waits (FIFO, each with a deadline, bounded), and which slots to start. The
// supervisor owns the connections of slots 1..size and reports their availability; the pool
// answers with grants and slots to start, never acting itself.
//
// - A connected, unleased slot is idle; idle slots are granted first, oldest waiter first.
// - Growth: while more waiters wait than slots are on their way up (starting or down but not
//   leased), a stopped slot that is not leased is started, up to `size` slots.
// - A slot that gave up is not started again (only `reset` of the URL revives it). When every
//   one of the `size` slots gave up, nothing can serve a lease: `all_gave_up()`.
// - A leased slot stays leased whatever its connection does, until its lease is returned; a
//   stale or second return is ignored.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/deadline_table.hpp"
#include "base/time.hpp"

namespace natsvisor {

/// How a pooled slot's connection stands, as the supervisor reports it.
enum class slot_availability : uint8_t {
  stopped,  ///< no connection actor (never started, or closed)
  starting, ///< connecting or restarting: will be usable unless it gives up
  down,     ///< exists but not usable now (nats.c reconnecting)
  up,       ///< connected
  gave_up,  ///< the slot's supervisor gave up on it
};

template <class Waiter>
class lease_pool {
 public:
  /// `size` slots at most (numbered 1..size), `max_waiters` queued requests at most.
  lease_pool(size_t size, size_t max_waiters);

  struct grant {
    uint64_t waiter_id;
    Waiter waiter;
    uint32_t slot;
    uint64_t lease; ///< unique id of this loan
  };

  struct decisions {
    std::vector<grant> grants;   ///< hand these out now
    std::vector<uint32_t> start; ///< start these slots now (their availability becomes starting)
  };

  /// A lease request with `deadline`. Granted at once when a slot is idle; otherwise queued
  /// (and slots may be started). Returns nullopt, leaving `w` untouched, when the queue is full.
  std::optional<decisions> request(uint64_t waiter_id, steady_time deadline, Waiter& w);

  /// The supervisor's report of slot `slot`'s availability. Ignored for a slot outside 1..size.
  decisions update(uint32_t slot, slot_availability a);

  /// Returns loan `lease` of `slot`; ignored when it is not that slot's current loan.
  decisions release(uint32_t slot, uint64_t lease);

  /// Waiters whose deadline passed (answer them errc::pool_exhausted), and the timer protocol of
  /// base/deadline_table.hpp.
  std::vector<std::pair<uint64_t, Waiter>> expire(steady_time now);
  std::optional<steady_time> rearm();

  /// Removes every waiter (the URL closes or gave up): answer each with the reason.
  std::vector<std::pair<uint64_t, Waiter>> take_waiters();

  /// Every one of the `size` slots gave up.
  bool all_gave_up() const;

  /// True when `lease` is the current loan of `slot`.
  bool holds(uint32_t slot, uint64_t lease) const;

  slot_availability availability(uint32_t slot) const;

  // Counters for status().
  size_t size() const noexcept;   ///< slots that exist (not stopped)
  size_t active() const noexcept; ///< leased
  size_t idle() const noexcept;   ///< up and not leased
  size_t waiting() const noexcept;
  uint64_t waits() const noexcept { return waits_; }       ///< requests that had to queue, ever
  uint64_t timeouts() const noexcept { return timeouts_; } ///< waiters expired, ever
  uint64_t started() const noexcept { return started_; }   ///< slot starts decided, ever
  size_t capacity() const noexcept { return slots_.size(); }

 private:
  struct slot_state {
    slot_availability availability = slot_availability::stopped;
    uint64_t lease = 0; ///< 0: not leased
  };
  decisions settle(); ///< grants to waiters, then growth
  slot_state* at(uint32_t slot);
  const slot_state* at(uint32_t slot) const;

  std::vector<slot_state> slots_; ///< slots_[i] is slot i + 1
  deadline_table<Waiter> waiters_;
  uint64_t next_lease_ = 0;
  uint64_t waits_ = 0;
  uint64_t timeouts_ = 0;
  uint64_t started_ = 0;
};

} // namespace natsvisor

#include "supervisors/lease_pool_impl.hpp"
