#pragma once

// Template definitions of supervisors/subscription_registry.hpp.
//
// The per-subscriber and per-URL counters hold only keys with a non-zero count, so "first" and
// "last" are exact: a count appearing is the first subscription, a count vanishing the last.

#include <utility>

namespace natsvisor {

template <class Subscriber>
subscription_registry<Subscriber>::subscription_registry(size_t capacity)
  : capacity_(capacity == 0 ? 1 : capacity) {}

template <class Subscriber>
typename subscription_registry<Subscriber>::added subscription_registry<Subscriber>::add(record r) {
  if (full() || by_id_.count(r.id) != 0)
    return {};
  added out;
  out.ok = true;
  out.first_for_subscriber = per_subscriber_[r.subscriber]++ == 0;
  ++per_url_[r.url];
  auto id = r.id;
  by_id_.emplace(id, std::move(r));
  return out;
}

template <class Subscriber>
std::optional<typename subscription_registry<Subscriber>::removed>
subscription_registry<Subscriber>::remove(uint64_t id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end())
    return std::nullopt;
  removed out{std::move(it->second), false};
  by_id_.erase(it);
  auto sub = per_subscriber_.find(out.rec.subscriber);
  if (--sub->second == 0) {
    per_subscriber_.erase(sub);
    out.last_for_subscriber = true;
  }
  auto url = per_url_.find(out.rec.url);
  if (--url->second == 0)
    per_url_.erase(url);
  return out;
}

template <class Subscriber>
std::vector<typename subscription_registry<Subscriber>::record>
subscription_registry<Subscriber>::remove_subscriber(const Subscriber& s) {
  std::vector<record> out;
  if (!has_subscriber(s))
    return out;
  // Equivalence as the counter map sees it, since Subscriber only needs operator<.
  auto less = per_subscriber_.key_comp();
  std::vector<uint64_t> ids;
  for (const auto& [id, r] : by_id_)
    if (!less(r.subscriber, s) && !less(s, r.subscriber))
      ids.push_back(id);
  // Through remove(), so the counters have one bookkeeping path; its "last" flag is moot here
  // (the subscriber died, its monitor has fired).
  out.reserve(ids.size());
  for (auto id : ids)
    out.push_back(std::move(remove(id)->rec));
  return out;
}

template <class Subscriber>
std::vector<typename subscription_registry<Subscriber>::record>
subscription_registry<Subscriber>::of_url(const std::string& url) const {
  std::vector<record> out;
  if (count_url(url) == 0)
    return out;
  for (const auto& [id, r] : by_id_)
    if (r.url == url)
      out.push_back(r);
  return out;
}

template <class Subscriber>
const typename subscription_registry<Subscriber>::record*
subscription_registry<Subscriber>::find(uint64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

template <class Subscriber>
bool subscription_registry<Subscriber>::has_subscriber(const Subscriber& s) const {
  return per_subscriber_.count(s) != 0;
}

template <class Subscriber>
size_t subscription_registry<Subscriber>::count_url(const std::string& url) const {
  auto it = per_url_.find(url);
  return it == per_url_.end() ? 0 : it->second;
}

template <class Subscriber>
size_t subscription_registry<Subscriber>::size() const noexcept {
  return by_id_.size();
}

template <class Subscriber>
bool subscription_registry<Subscriber>::full() const noexcept {
  return by_id_.size() >= capacity_;
}

} // namespace natsvisor
