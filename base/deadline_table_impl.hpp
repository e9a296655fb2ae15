#pragma once

// Template definitions of base/deadline_table.hpp.

namespace natsvisor {

template <class T>
deadline_table<T>::deadline_table(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

template <class T>
bool deadline_table<T>::add(uint64_t id, steady_time deadline, T& value) {
  if (full() || by_id_.count(id) != 0)
    return false;
  by_id_.emplace(id, entry{deadline, std::move(value)});
  by_deadline_.emplace(deadline, id);
  return true;
}

template <class T>
std::optional<T> deadline_table<T>::take(uint64_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  by_deadline_.erase({it->second.deadline, id});
  std::optional<T> out{std::move(it->second.value)};
  by_id_.erase(it);
  return out;
}

template <class T>
std::optional<std::pair<uint64_t, T>> deadline_table<T>::take_oldest() {
  if (by_id_.empty())
    return std::nullopt;
  auto it = by_id_.begin();
  by_deadline_.erase({it->second.deadline, it->first});
  std::optional<std::pair<uint64_t, T>> out{std::in_place, it->first, std::move(it->second.value)};
  by_id_.erase(it);
  return out;
}

template <class T>
std::vector<std::pair<uint64_t, T>> deadline_table<T>::take_all() {
  std::vector<std::pair<uint64_t, T>> out;
  out.reserve(by_id_.size());
  for (auto& [id, e] : by_id_)
    out.emplace_back(id, std::move(e.value));
  by_id_.clear();
  by_deadline_.clear();
  return out;
}

template <class T>
std::vector<std::pair<uint64_t, T>> deadline_table<T>::expire(steady_time now) {
  if (armed_ && *armed_ <= now)
    armed_.reset();
  std::vector<std::pair<uint64_t, T>> out;
  while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
    auto id = by_deadline_.begin()->second;
    by_deadline_.erase(by_deadline_.begin());
    auto it = by_id_.find(id);
    out.emplace_back(id, std::move(it->second.value));
    by_id_.erase(it);
  }
  return out;
}

template <class T>
std::optional<steady_time> deadline_table<T>::rearm() {
  auto next = next_deadline();
  if (!next || (armed_ && *armed_ <= *next))
    return std::nullopt;
  armed_ = next;
  return next;
}

template <class T>
std::optional<steady_time> deadline_table<T>::next_deadline() const {
  if (by_deadline_.empty())
    return std::nullopt;
  return by_deadline_.begin()->first;
}

template <class T>
bool deadline_table<T>::contains(uint64_t id) const {
  return by_id_.count(id) != 0;
}

template <class T>
size_t deadline_table<T>::size() const noexcept {
  return by_id_.size();
}

template <class T>
bool deadline_table<T>::empty() const noexcept {
  return by_id_.empty();
}

template <class T>
bool deadline_table<T>::full() const noexcept {
  return by_id_.size() >= capacity_;
}

template <class T>
size_t deadline_table<T>::capacity() const noexcept {
  return capacity_;
}

} // namespace natsvisor
