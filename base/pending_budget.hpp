#pragma once

// How much one message-path subscription may hold that its subscriber has not consumed yet.
// nats.c's own pending limits cover only its queue before the message handler; the handler hands
// each message on to the subscriber's mailbox at once, so a subscriber that does not keep up
// would otherwise grow its mailbox without bound. The budget counts a message from its handover
// until the subscriber is done with it (its last copy is gone), drops what does not fit, and
// tells when a slow-consumer episode starts: once per episode, not once per dropped message.
//
// - A message arriving while nothing is pending is always accepted, even one larger than the
//   byte limit: the subscriber is waiting for it. Otherwise it must fit both limits.
// - An episode starts with the first drop (at the handover, or reported from nats.c's queue) while
//   none runs, and is told exactly once: by admit's dropped_first or dropped_elsewhere's true.
// - It ends only on a release (the subscriber consuming): when at most half the limits (rounded
//   down) are still pending, so a subscriber hovering at the limit does not start a new episode
//   with every message, and the subscriber consumed at least two messages since the last drop.
//   Only the subscriber ends it, so drops in nats.c's queue and at the handover within one
//   burst, told in either order, are one episode. The two messages are for small limits: with
//   a limit of one or two messages, or messages larger than half the byte limit, consuming the
//   one message that was pending at the drop already reaches half the limits, and a subscriber
//   hovering at the limit started an episode with almost every message. It must now consume one
//   more with no drop in between (it kept up once). With larger limits it changes nothing for a drop
//   at the message limit (back to half takes two messages or more anyway); it does for a drop
//   at the byte limit behind one big message, and for a drop in nats.c's queue while nothing is
//   pending: that episode too ends only after two messages consumed (meanwhile a new overflow
//   is part of it, not told again).
//
// Thread-safe without locks. Callers run concurrently: nats.c's delivery thread admits,
// whichever thread drops a message's last copy releases (any subscriber's thread, a mailbox being
// destroyed), drops in nats.c's queue are reported (dropped_elsewhere), and the connection actor
// reads the counters. nats.c delivers one subscription's messages from one thread at a time, so
// admits never race each other, but releases race each other, the admit and dropped_elsewhere.
// The whole state (messages, bytes, episode flag, consumed since the drop) is therefore one 64-bit
// word changed only by compare-and-swap of a pure decision on the value read: the bound is
// checked and charged in the same step (a concurrent release can only have made room, and a
// failed CAS decides again on the new value), and the episode flag flips on exactly one winning
// CAS each way, which is the one that tells or ends it. A CAS retries when another thread
// changed the word meanwhile (or spuriously: compare_exchange_weak), deciding again. Relaxed order suffices: the word guards no other memory (messages travel
// through mailboxes), and a tell is sent after its episode was counted, so whoever receives it
// sees the count.

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace natsvisor {

class pending_budget {
 public:
  /// Limits of at most `max_messages` messages and `max_bytes` bytes (0 is treated as 1; more
  /// than fits the state word, 2^30-1 messages or 2^31-1 bytes, as that).
  pending_budget(uint64_t max_messages, uint64_t max_bytes) noexcept;

  enum class admission : uint8_t {
    accepted,     ///< hand it over; release(bytes) once the subscriber is done with it
    dropped,      ///< over the limits, in an episode already told
    dropped_first ///< over the limits: a slow-consumer episode starts now, tell it
  };

  /// A message of `bytes` arrives (one thread at a time).
  admission admit(uint64_t bytes) noexcept;

  /// The subscriber is done with an accepted message of `bytes` (any thread): true when this
  /// release ended the episode that ran (the tests count ends against tells).
  bool release(uint64_t bytes) noexcept;

  /// Messages were dropped before they reached the budget (nats.c's own pending limits): true
  /// when that starts an episode (tell it), false within one.
  bool dropped_elsewhere() noexcept;

  uint64_t messages() const noexcept { return state().messages; }
  uint64_t bytes() const noexcept { return state().bytes; }
  bool slow() const noexcept { return state().slow; } ///< in an episode now
  /// By admit, in total.
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Started, in total: one per tell.
  uint64_t episodes() const noexcept { return episodes_.load(std::memory_order_relaxed); }
  uint64_t max_messages() const noexcept { return limits_.messages; }
  uint64_t max_bytes() const noexcept { return limits_.bytes; }

  // -- the pure decisions, on a snapshot of the state -----------------------------------------

  struct limits {
    uint64_t messages;
    uint64_t bytes;
  };

  /// Messages consumed since the last drop that an episode's end asks for; counted up to this.
  static constexpr uint8_t consumed_to_end = 2;

  struct state_t {
    uint64_t messages = 0;
    uint64_t bytes = 0;
    bool slow = false;
    uint8_t consumed = consumed_to_end; ///< since the last drop (none yet: enough)
    friend constexpr bool operator==(state_t a, state_t b) noexcept {
      return a.messages == b.messages && a.bytes == b.bytes && a.slow == b.slow
             && a.consumed == b.consumed;
    }
  };

  struct admit_decision {
    state_t next;
    admission verdict;
  };

  static constexpr uint64_t max_message_count = (uint64_t{1} << 30) - 1;
  static constexpr uint64_t max_byte_count = (uint64_t{1} << 31) - 1;

  /// What one message counts against the byte limit (clamped so the state word cannot overflow).
  static constexpr uint64_t charge(uint64_t bytes) noexcept {
    return bytes < max_byte_count ? bytes : max_byte_count;
  }

  static constexpr admit_decision decide_admit(state_t s, uint64_t bytes, limits l) noexcept {
    auto c = charge(bytes);
    bool fits = s.messages == 0
                || (s.messages < l.messages && s.bytes <= l.bytes && c <= l.bytes - s.bytes);
    if (fits) {
      ++s.messages;
      s.bytes += c;
      return {s, admission::accepted};
    }
    return {decide_drop(s), s.slow ? admission::dropped : admission::dropped_first};
  }

  static constexpr state_t decide_release(state_t s, uint64_t bytes, limits l) noexcept {
    auto c = charge(bytes);
    s.messages = s.messages > 0 ? s.messages - 1 : 0;
    s.bytes = s.bytes > c ? s.bytes - c : 0;
    if (s.consumed < consumed_to_end)
      ++s.consumed;
    if (s.slow && s.consumed >= consumed_to_end && s.messages <= l.messages / 2
        && s.bytes <= l.bytes / 2)
      s.slow = false;
    return s;
  }

  /// A drop anywhere: the episode runs (started now unless it ran), the count starts again.
  static constexpr state_t decide_drop(state_t s) noexcept {
    s.slow = true;
    s.consumed = 0;
    return s;
  }

  // The state word: bytes in bits 0-30, messages in 31-60, consumed in 61-62, slow in 63.
  static constexpr uint64_t pack(state_t s) noexcept {
    return s.bytes | s.messages << 31 | uint64_t{s.consumed} << 61 | uint64_t{s.slow} << 63;
  }
  static constexpr state_t unpack(uint64_t w) noexcept {
    return {(w >> 31) & max_message_count, w & max_byte_count, (w >> 63) != 0,
            static_cast<uint8_t>((w >> 61) & 3)};
  }

 private:
  state_t state() const noexcept { return unpack(word_.load(std::memory_order_relaxed)); }

  limits limits_;
  std::atomic<uint64_t> word_;
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "the budget promises no lock");
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> episodes_{0};
};

inline pending_budget::pending_budget(uint64_t max_messages, uint64_t max_bytes) noexcept
  : limits_{std::clamp<uint64_t>(max_messages, 1, max_message_count),
            std::clamp<uint64_t>(max_bytes, 1, max_byte_count)},
    word_(pack(state_t{})) {}

inline pending_budget::admission pending_budget::admit(uint64_t bytes) noexcept {
  auto cur = word_.load(std::memory_order_relaxed);
  for (;;) {
    auto d = decide_admit(unpack(cur), bytes, limits_);
    if (word_.compare_exchange_weak(cur, pack(d.next), std::memory_order_relaxed)) {
      if (d.verdict != admission::accepted)
        dropped_.fetch_add(1, std::memory_order_relaxed);
      if (d.verdict == admission::dropped_first)
        episodes_.fetch_add(1, std::memory_order_relaxed);
      return d.verdict;
    }
  }
}

inline bool pending_budget::release(uint64_t bytes) noexcept {
  auto cur = word_.load(std::memory_order_relaxed);
  state_t next{};
  do
    next = decide_release(unpack(cur), bytes, limits_);
  while (!word_.compare_exchange_weak(cur, pack(next), std::memory_order_relaxed));
  // `cur` is the value this release replaced.
  return unpack(cur).slow && !next.slow;
}

inline bool pending_budget::dropped_elsewhere() noexcept {
  auto cur = word_.load(std::memory_order_relaxed);
  while (
    !word_.compare_exchange_weak(cur, pack(decide_drop(unpack(cur))), std::memory_order_relaxed)) {
    // nop: decided again on the value another thread just wrote
  }
  bool first = !unpack(cur).slow; // cur: the value the winning CAS replaced
  if (first)
    episodes_.fetch_add(1, std::memory_order_relaxed);
  return first;
}

} // namespace natsvisor
