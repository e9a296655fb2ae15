#pragma once

// How much one message-path subscription may hold that its subscriber has not consumed yet, as
// a pure core. nats.c's own pending limits cover only its queue before the message handler;
// the handler hands each message on to the subscriber's mailbox at once, so a subscriber that
// does not keep up would otherwise grow its mailbox without bound. The budget counts a message
// from its handover until the subscriber is done with it (its last copy is gone), drops what
// does not fit, and tells when a slow-consumer episode starts: once per episode, not once per
// dropped message. An episode ends when the subscriber has caught up to half the limits, so a
// subscriber hovering at the limit does not start a new episode with every message; only the
// subscriber ends it (by consuming), so drops in nats.c's queue and at the handover within one
// burst, told in either order, are one episode.
//
// Not thread-safe: the owner serializes the calls (nats.c's delivery thread admits, whichever
// thread drops a message's last copy releases).

#include <cstdint>

namespace natsvisor {

class pending_budget {
 public:
  /// Limits of at most `max_messages` messages and `max_bytes` bytes (0 is treated as 1).
  pending_budget(uint64_t max_messages, uint64_t max_bytes) noexcept;

  enum class admission : uint8_t {
    accepted,     ///< hand it over; release(bytes) once the subscriber is done with it
    dropped,      ///< over the limits, in an episode already told
    dropped_first ///< over the limits: a slow-consumer episode starts now, tell it
  };

  /// A message of `bytes` arrives. A message arriving while nothing is pending is always
  /// accepted, even one larger than max_bytes: the subscriber is waiting for it.
  admission admit(uint64_t bytes) noexcept;

  /// The subscriber is done with an accepted message of `bytes`.
  void release(uint64_t bytes) noexcept;

  /// Messages were dropped before they reached the budget (nats.c's own pending limits): true
  /// when that starts an episode (tell it), false within one.
  bool dropped_elsewhere() noexcept;

  uint64_t messages() const noexcept { return messages_; }
  uint64_t bytes() const noexcept { return bytes_; }
  uint64_t dropped() const noexcept { return dropped_; }   ///< by admit, in total
  uint64_t episodes() const noexcept { return episodes_; } ///< started, in total
  bool slow() const noexcept { return slow_; }             ///< in an episode now
  uint64_t max_messages() const noexcept { return max_messages_; }
  uint64_t max_bytes() const noexcept { return max_bytes_; }

 private:
  bool start_episode() noexcept;
  void end_episode_if_caught_up() noexcept;

  uint64_t max_messages_;
  uint64_t max_bytes_;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  uint64_t dropped_ = 0;
  uint64_t episodes_ = 0;
  bool slow_ = false;
};

inline pending_budget::pending_budget(uint64_t max_messages, uint64_t max_bytes) noexcept
  : max_messages_(max_messages == 0 ? 1 : max_messages),
    max_bytes_(max_bytes == 0 ? 1 : max_bytes) {}

inline pending_budget::admission pending_budget::admit(uint64_t bytes) noexcept {
  bool fits = messages_ == 0
              || (messages_ < max_messages_ && bytes_ <= max_bytes_ && bytes <= max_bytes_ - bytes_);
  if (!fits) {
    ++dropped_;
    return start_episode() ? admission::dropped_first : admission::dropped;
  }
  ++messages_;
  bytes_ += bytes;
  return admission::accepted;
}

inline void pending_budget::release(uint64_t bytes) noexcept {
  if (messages_ > 0)
    --messages_;
  bytes_ = bytes_ > bytes ? bytes_ - bytes : 0;
  end_episode_if_caught_up();
}

inline bool pending_budget::dropped_elsewhere() noexcept {
  return start_episode();
}

inline bool pending_budget::start_episode() noexcept {
  if (slow_)
    return false;
  slow_ = true;
  ++episodes_;
  return true;
}

inline void pending_budget::end_episode_if_caught_up() noexcept {
  if (slow_ && messages_ <= max_messages_ / 2 && bytes_ <= max_bytes_ / 2)
    slow_ = false;
}

} // namespace natsvisor
