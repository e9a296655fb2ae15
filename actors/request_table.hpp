#pragma once

// The requests a connection actor has in flight (a reply, a JetStream acknowledgement, a health
// or subscription barrier): a pure core over base/deadline_table.hpp that hands out the reply
// tokens. A reply completes its token once; a deadline expires it once; a connection that goes
// takes all that are left. Bounded: past `capacity` a request is refused at once.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/deadline_table.hpp"

namespace natsvisor {

template <class T>
class request_table {
 public:
  explicit request_table(size_t capacity) : table_(capacity) {}

  /// A fresh token for `value` until `deadline`; nullopt (value untouched) when full.
  std::optional<uint64_t> add(steady_time deadline, T& value) {
    auto token = next_token_ + 1;
    if (!table_.add(token, deadline, value))
      return std::nullopt;
    next_token_ = token;
    return token;
  }

  /// Registers `value` under a token made elsewhere (a reply slot's, actors/direct_replies.hpp),
  /// which must lie outside the range `add` counts in; false (value untouched) when full.
  bool add_as(uint64_t token, steady_time deadline, T& value) {
    return table_.add(token, deadline, value);
  }

  /// The request of a reply; nullopt when it was answered already (timed out, or a 2nd reply).
  std::optional<T> complete(uint64_t token) { return table_.take(token); }

  std::vector<std::pair<uint64_t, T>> expire(steady_time now) { return table_.expire(now); }
  std::vector<std::pair<uint64_t, T>> take_all() { return table_.take_all(); }
  std::optional<steady_time> rearm() { return table_.rearm(); }
  bool contains(uint64_t token) const { return table_.contains(token); }
  size_t size() const noexcept { return table_.size(); }
  bool full() const noexcept { return table_.full(); }

 private:
  deadline_table<T> table_;
  uint64_t next_token_ = 0;
};

} // namespace natsvisor
