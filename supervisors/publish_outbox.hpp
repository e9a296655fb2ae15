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

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "messages/types.hpp"

namespace natsvisor {

template <class T>
class publish_outbox {
 public:
  struct entry {
    T item;
    uint64_t messages = 1; ///< a batch is one entry of many messages
    uint64_t bytes = 0;
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
    q.push_back(std::move(e));
    return std::nullopt;
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
};

} // namespace natsvisor
