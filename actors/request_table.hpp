#pragma once

// The requests a connection actor has in flight (a reply, a JetStream acknowledgement, a health
// or subscription barrier): a pure core over base/deadline_table.hpp that hands out the reply
// tokens. A reply completes its token once; a deadline expires it once; a connection that goes
// takes all that are left, in the order they arrived (they are sent again in that order, and a
// reply slot's token says nothing of when it was armed). Bounded: past `capacity` a request is
// refused at once.

#include <cstddef>
#include <algorithm>
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
    if (!add_as(token, deadline, value))
      return std::nullopt;
    next_token_ = token;
    return token;
  }

  /// Registers `value` under a token made elsewhere (a reply slot's, actors/direct_replies.hpp),
  /// which must lie outside the range `add` counts in; false (value untouched) when full.
  bool add_as(uint64_t token, steady_time deadline, T& value) {
    entry e{next_arrival_, std::move(value)};
    if (!table_.add(token, deadline, e)) {
      value = std::move(e.value);
      return false;
    }
    ++next_arrival_;
    return true;
  }

  /// The request of a reply; nullopt when it was answered already (timed out, or a 2nd reply).
  std::optional<T> complete(uint64_t token) {
    auto e = table_.take(token);
    if (!e)
      return std::nullopt;
    return std::move(e->value);
  }

  /// The requests whose deadline passed, earliest first.
  std::vector<std::pair<uint64_t, T>> expire(steady_time now) { return values(table_.expire(now)); }

  /// Every request, in the order they arrived.
  std::vector<std::pair<uint64_t, T>> take_all() {
    auto all = table_.take_all();
    std::sort(all.begin(), all.end(),
              [](const auto& x, const auto& y) { return x.second.arrival < y.second.arrival; });
    return values(std::move(all));
  }
  std::optional<steady_time> rearm() { return table_.rearm(); }
  bool contains(uint64_t token) const { return table_.contains(token); }
  size_t size() const noexcept { return table_.size(); }
  bool full() const noexcept { return table_.full(); }

 private:
  struct entry {
    uint64_t arrival = 0;
    T value;
  };

  static std::vector<std::pair<uint64_t, T>>
  values(std::vector<std::pair<uint64_t, entry>> entries) {
    std::vector<std::pair<uint64_t, T>> out;
    out.reserve(entries.size());
    for (auto& [token, e] : entries)
      out.emplace_back(token, std::move(e.value));
    return out;
  }

  deadline_table<entry> table_;
  uint64_t next_token_ = 0;
  uint64_t next_arrival_ = 0;
};

} // namespace natsvisor
