#pragma once

// The publish buffer of one URL as a pure core: message-path publishes that no connection may
// take now (the URL's shared connection is not connected), held in order, bounded, until they
// are written on the next connection or dropped for a reason. It lives in the supervisor, so it
// outlives every connection actor; nats.c's own reconnect buffer dies with its connection.
//
// - Two queues, drained in this order: `returned` (publishes a connection handed back unwritten:
//   the supervisor forwarded them before it learned of the disconnect, so they are older than
//   anything accepted since) and `fresh` (accepted while nothing could take them).
// - Bounded by messages and bytes over both queues together; what does not fit is handed back
//   at once (dropped, reason over_bound), so the bounds are never exceeded.
// - Every message ends in exactly one fate: written (take_all, counted as replayed) or dropped
//   with a reason (counted per reason). The counts include drops the supervisor reports for
//   publishes it refused at the door (count_dropped).
// - An entry may carry a deadline (a publish whose sender awaits an answer): `expire(now)` drops
//   those past it (reason timeout), keeping the order of the rest. The timer protocol is the
//   deadline table's (base/deadline_table.hpp): `rearm()` after changes, `expire` when it fires.

#include <cstdint>
#include <deque>
#include <set>
#include <optional>
#include <utility>
#include <vector>

#include "base/time.hpp"
#include "messages/types.hpp"

namespace natsvisor {

template <class T>
class publish_outbox {
 public:
  struct entry {
    T item;
    uint64_t messages = 1; ///< a batch is one entry of many messages
    uint64_t bytes = 0;
    std::optional<steady_time> deadline; ///< none: held until written or dropped otherwise
  };

  publish_outbox(uint64_t max_messages, uint64_t max_bytes)
    : max_messages_(max_messages), max_bytes_(max_bytes) {}

  /// Keeps a publish accepted while no connection may take it, after everything held; or hands
  /// it back when it does not fit (counted as dropped over_bound).
  std::optional<entry> add(entry e) { return keep(fresh_, std::move(e)); }

  /// Keeps a publish a connection handed back unwritten: after the other handed-back ones,
  /// before every publish accepted since. Handed back when it does not fit (over_bound).
  std::optional<entry> add_returned(entry e) { return keep(returned_, std::move(e)); }

  /// Everything held, in order, to be written on the connection that is up (counted replayed).
  std::vector<entry> take_all() {
    auto out = take();
    for (auto& e : out)
      replayed_ += e.messages;
    return out;
  }

  /// Everything held, dropped for `reason` (counted).
  std::vector<entry> drop_all(drop_reason reason) {
    auto out = take();
    for (auto& e : out)
      count_dropped(reason, e.messages);
    return out;
  }

  /// Every entry whose deadline is at or before `now`, dropped (timeout); the rest keep their
  /// order. Forgets an armed timer due at or before `now`.
  std::vector<entry> expire(steady_time now) {
    std::vector<entry> out;
    if (armed_ && *armed_ <= now)
      armed_.reset();
    if (deadlines_.empty() || *deadlines_.begin() > now)
      return out;
    for (auto* q : {&returned_, &fresh_}) {
      std::deque<entry> kept;
      for (auto& e : *q) {
        if (e.deadline && *e.deadline <= now)
          out.push_back(std::move(e));
        else
          kept.push_back(std::move(e));
      }
      q->swap(kept);
    }
    for (auto& e : out) {
      forget(e);
      count_dropped(drop_reason::timeout, e.messages);
    }
    return out;
  }

  /// When a timer must be armed: the earliest deadline, if no timer is armed for it or earlier.
  std::optional<steady_time> rearm() {
    if (deadlines_.empty())
      return std::nullopt;
    auto earliest = *deadlines_.begin();
    if (armed_ && *armed_ <= earliest)
      return std::nullopt;
    armed_ = earliest;
    return earliest;
  }

  /// Counts publishes dropped without ever being held (refused at the door).
  void count_dropped(drop_reason reason, uint64_t messages) {
    dropped_[static_cast<size_t>(reason)] += messages;
  }

  bool empty() const noexcept { return returned_.empty() && fresh_.empty(); }
  uint64_t messages() const noexcept { return messages_; }
  uint64_t bytes() const noexcept { return bytes_; }
  uint64_t replayed() const noexcept { return replayed_; }
  uint64_t dropped(drop_reason reason) const noexcept {
    return dropped_[static_cast<size_t>(reason)];
  }
  uint64_t max_messages() const noexcept { return max_messages_; }
  uint64_t max_bytes() const noexcept { return max_bytes_; }

 private:
  std::optional<entry> keep(std::deque<entry>& q, entry e) {
    if (e.messages > max_messages_ - messages_ || e.bytes > max_bytes_ - bytes_) {
      count_dropped(drop_reason::over_bound, e.messages);
      return e;
    }
    messages_ += e.messages;
    bytes_ += e.bytes;
    if (e.deadline)
      deadlines_.insert(*e.deadline);
    q.push_back(std::move(e));
    return std::nullopt;
  }

  void forget(const entry& e) {
    messages_ -= e.messages;
    bytes_ -= e.bytes;
    if (e.deadline)
      deadlines_.erase(deadlines_.find(*e.deadline));
  }

  std::vector<entry> take() {
    std::vector<entry> out;
    out.reserve(returned_.size() + fresh_.size());
    for (auto* q : {&returned_, &fresh_}) {
      for (auto& e : *q)
        out.push_back(std::move(e));
      q->clear();
    }
    messages_ = 0;
    bytes_ = 0;
    deadlines_.clear();
    return out;
  }

  uint64_t max_messages_;
  uint64_t max_bytes_;
  std::deque<entry> returned_;
  std::deque<entry> fresh_;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  uint64_t replayed_ = 0;
  uint64_t dropped_[drop_reason_count] = {};
  std::multiset<steady_time> deadlines_;
  std::optional<steady_time> armed_;
};

} // namespace natsvisor
