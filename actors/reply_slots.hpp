#pragma once

// Reply slots: the requests whose reply a nats.c thread hands straight to the requester, without
// a hop through the connection actor. A pure, lock-free core (no CAF, no nats.c).
//
// One thread owns the table (the connection actor): it arms a slot for a request and may cancel
// it (deadline, connection loss, the actor's end). Any other thread may take it (the reply, on a
// nats.c delivery thread). Whoever wins the slot's compare-and-swap gets the value, exactly once:
// a reply after a cancel, a cancel after a reply, a second reply, or a reply for a slot that was
// reused since (its ticket carries the slot's sequence number) all get nothing.
//
// A taken slot goes back to its owner through a lock-free stack (pushed by the taker, emptied
// whole by the owner in reclaim, so no ABA), with its ticket, so the owner forgets the answered
// request. Bounded: past `capacity` armed or not yet
// reclaimed slots, arm refuses and the caller takes the slow path.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace natsvisor {

template <class T>
class reply_slots {
 public:
  explicit reply_slots(size_t capacity)
    : capacity_(capacity == 0 ? 1 : capacity), slots_(new slot[capacity_]) {
    free_.reserve(capacity_);
    for (size_t i = capacity_; i > 0; --i)
      free_.push_back(static_cast<uint32_t>(i - 1));
  }

  reply_slots(const reply_slots&) = delete;
  reply_slots& operator=(const reply_slots&) = delete;

  size_t capacity() const noexcept { return capacity_; }

  // -- the owner's side (one thread) ------------------------------------------------------------

  /// Arms a free slot with `value`; returns its ticket (never 0), or nullopt (value untouched)
  /// when every slot is armed or awaits reclaim.
  std::optional<uint64_t> arm(T& value) {
    if (free_.empty())
      return std::nullopt;
    auto index = free_.back();
    free_.pop_back();
    auto& s = slots_[index];
    auto seq = ++s.seq; // owner-only counter: a reused slot gets a fresh ticket
    s.value = std::move(value);
    s.state.store(encode(seq, armed), std::memory_order_release);
    ++armed_;
    return seq * capacity_ + index;
  }

  /// The owner ends the request (deadline, connection loss, its own end): its value if the owner
  /// won, nullopt if a taker won (or the ticket is not armed). A won slot is free at once.
  std::optional<T> cancel(uint64_t ticket) {
    auto index = claim(ticket, idle);
    if (!index)
      return std::nullopt;
    auto out = move_out(*index);
    free_.push_back(static_cast<uint32_t>(*index));
    --armed_;
    return out;
  }

  /// Frees the slots takers answered since the last call; `on_taken(ticket)` for each.
  template <class F>
  size_t reclaim(F&& on_taken) {
    auto head = returned_.exchange(none, std::memory_order_acquire);
    size_t n = 0;
    while (head != none) {
      auto& s = slots_[head];
      auto next = s.next;
      on_taken(s.seq * capacity_ + head);
      s.state.store(encode(s.seq, idle), std::memory_order_relaxed);
      free_.push_back(head);
      --armed_;
      ++n;
      head = next;
    }
    return n;
  }

  /// Slots armed or taken but not reclaimed yet.
  size_t in_use() const noexcept { return armed_; }

  // -- any thread ---------------------------------------------------------------------------------

  /// A reply for `ticket`: the value if this call won the slot, nullopt otherwise (cancelled,
  /// taken already, stale, or not a ticket of this table).
  std::optional<T> take(uint64_t ticket) {
    auto index = claim(ticket, taken);
    if (!index)
      return std::nullopt;
    auto out = move_out(*index);
    // Back to the owner only now: from here on the owner may reuse the slot.
    auto& s = slots_[*index];
    auto head = returned_.load(std::memory_order_relaxed);
    do
      s.next = head;
    while (!returned_.compare_exchange_weak(head, static_cast<uint32_t>(*index),
                                            std::memory_order_release,
                                            std::memory_order_relaxed));
    return out;
  }

 private:
  enum phase : uint64_t { idle = 0, armed = 1, taken = 2 };
  static constexpr uint32_t none = UINT32_MAX;

  struct slot {
    std::atomic<uint64_t> state{0}; // (sequence << 2) | phase
    uint64_t seq = 0;               // owner only: the sequence of the last arm
    uint32_t next = none;           // link in the returned stack
    T value{};
  };

  static uint64_t encode(uint64_t seq, phase p) noexcept { return (seq << 2) | p; }

  // Moves the slot of `ticket` from armed to `to`: its index if this call won the slot.
  std::optional<size_t> claim(uint64_t ticket, phase to) {
    auto index = index_of(ticket);
    if (!index)
      return std::nullopt;
    auto expected = encode(seq_of(ticket), armed);
    if (!slots_[*index].state.compare_exchange_strong(expected, encode(seq_of(ticket), to),
                                                      std::memory_order_acq_rel,
                                                      std::memory_order_relaxed))
      return std::nullopt;
    return index;
  }

  // The value of a slot this thread won.
  std::optional<T> move_out(size_t index) {
    std::optional<T> out{std::move(slots_[index].value)};
    slots_[index].value = T{};
    return out;
  }
  uint64_t seq_of(uint64_t ticket) const noexcept { return ticket / capacity_; }

  std::optional<size_t> index_of(uint64_t ticket) const noexcept {
    if (ticket < capacity_) // sequence 0: never armed
      return std::nullopt;
    return static_cast<size_t>(ticket % capacity_);
  }

  size_t capacity_;
  std::unique_ptr<slot[]> slots_;
  std::vector<uint32_t> free_; // owner only
  size_t armed_ = 0;           // owner only
  std::atomic<uint32_t> returned_{none};
};

} // namespace natsvisor
