#pragma once

// Template definitions of supervisors/lease_pool.hpp.
//
// One invariant carries the design: after every operation, no slot is idle while a waiter waits
// (every operation that can make a slot idle or add a waiter ends in settle(), which grants until
// one of the two runs out). Hence a request finds either an idle slot and an empty queue, or no
// idle slot at all.

#include <algorithm>

namespace natsvisor {

template <class Waiter>
lease_pool<Waiter>::lease_pool(size_t size, size_t max_waiters)
  : slots_(size), waiters_(max_waiters) {}

template <class Waiter>
std::optional<typename lease_pool<Waiter>::decisions>
lease_pool<Waiter>::request(uint64_t waiter_id, steady_time deadline, Waiter& w) {
  // With an idle slot the queue is empty (see the invariant above), so queuing cannot fail and
  // settle() hands that slot to this request at once: one granting path, no second copy of it.
  const bool must_wait = idle() == 0;
  if (!waiters_.add(waiter_id, deadline, w))
    return std::nullopt;
  if (must_wait)
    ++waits_;
  return settle();
}

template <class Waiter>
typename lease_pool<Waiter>::decisions lease_pool<Waiter>::update(uint32_t slot,
                                                                  slot_availability a) {
  auto* s = at(slot);
  if (s == nullptr)
    return {};
  s->availability = a;
  // Settle on every report, not only on `up`: a slot that stops or gives up while waiters wait
  // no longer counts as on its way up, so growth may have to start another one.
  return settle();
}

template <class Waiter>
typename lease_pool<Waiter>::decisions lease_pool<Waiter>::release(uint32_t slot, uint64_t lease) {
  if (!holds(slot, lease))
    return {}; // stale or second return: the slot may already serve another lease
  at(slot)->lease = 0;
  return settle();
}

template <class Waiter>
std::vector<std::pair<uint64_t, Waiter>> lease_pool<Waiter>::expire(steady_time now) {
  auto out = waiters_.expire(now);
  timeouts_ += out.size();
  return out;
}

template <class Waiter>
std::optional<steady_time> lease_pool<Waiter>::rearm() {
  return waiters_.rearm();
}

template <class Waiter>
std::vector<std::pair<uint64_t, Waiter>> lease_pool<Waiter>::take_waiters() {
  return waiters_.take_all();
}

template <class Waiter>
bool lease_pool<Waiter>::all_gave_up() const {
  // Vacuously true for a pool of no slot: nothing can serve a lease there either.
  return std::all_of(slots_.begin(), slots_.end(), [](const slot_state& s) {
    return s.availability == slot_availability::gave_up;
  });
}

template <class Waiter>
bool lease_pool<Waiter>::holds(uint32_t slot, uint64_t lease) const {
  const auto* s = at(slot);
  return s != nullptr && lease != 0 && s->lease == lease;
}

template <class Waiter>
slot_availability lease_pool<Waiter>::availability(uint32_t slot) const {
  const auto* s = at(slot);
  return s == nullptr ? slot_availability::stopped : s->availability;
}

template <class Waiter>
size_t lease_pool<Waiter>::size() const noexcept {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot_state& s) {
    return s.availability != slot_availability::stopped;
  }));
}

template <class Waiter>
size_t lease_pool<Waiter>::active() const noexcept {
  return static_cast<size_t>(
    std::count_if(slots_.begin(), slots_.end(), [](const slot_state& s) { return s.lease != 0; }));
}

template <class Waiter>
size_t lease_pool<Waiter>::idle() const noexcept {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot_state& s) {
    return s.lease == 0 && s.availability == slot_availability::up;
  }));
}

template <class Waiter>
size_t lease_pool<Waiter>::waiting() const noexcept {
  return waiters_.size();
}

template <class Waiter>
typename lease_pool<Waiter>::decisions lease_pool<Waiter>::settle() {
  decisions out;
  // Grants: idle slots in slot order to waiters in arrival order, so the lowest-numbered slots
  // stay busy and the higher ones may idle out.
  for (size_t i = 0; i < slots_.size() && !waiters_.empty(); ++i) {
    auto& s = slots_[i];
    if (s.lease != 0 || s.availability != slot_availability::up)
      continue;
    auto w = waiters_.take_oldest();
    s.lease = ++next_lease_;
    out.grants.push_back(
      grant{w->first, std::move(w->second), static_cast<uint32_t>(i + 1), s.lease});
  }
  // Growth: a slot on its way up (starting or down) will serve one waiter when it comes up,
  // unless it is leased, in which case its lease keeps it. Start stopped slots for the rest,
  // unleased ones only: a leased slot would come up for its holder and serve no waiter, yet count
  // as pending and keep a free slot from starting. Slots that gave up stay so until a reset.
  size_t pending
    = static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const slot_state& s) {
        return s.lease == 0
               && (s.availability == slot_availability::starting
                   || s.availability == slot_availability::down);
      }));
  for (size_t i = 0; i < slots_.size() && waiters_.size() > pending; ++i) {
    auto& s = slots_[i];
    if (s.lease != 0 || s.availability != slot_availability::stopped)
      continue;
    s.availability = slot_availability::starting;
    out.start.push_back(static_cast<uint32_t>(i + 1));
    ++started_;
    ++pending;
  }
  return out;
}

template <class Waiter>
typename lease_pool<Waiter>::slot_state* lease_pool<Waiter>::at(uint32_t slot) {
  return const_cast<slot_state*>(static_cast<const lease_pool*>(this)->at(slot));
}

template <class Waiter>
const typename lease_pool<Waiter>::slot_state* lease_pool<Waiter>::at(uint32_t slot) const {
  return slot == 0 || slot > slots_.size() ? nullptr : &slots_[slot - 1];
}

} // namespace natsvisor
