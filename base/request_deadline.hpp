#pragma once

// A caller's timeout bounds the whole wait of its request, wherever the request waits: parked in
// the supervisor while the URL's connection (re)starts, held in the connection actor while nats.c
// reconnects, handed back after a failed connection and parked again, in flight. Each hop turns
// the timeout it received into a deadline and passes on only the time left, so no hop starts the
// caller's timeout afresh. Pure (the actors read the clock): tested in tests/core.

#include <algorithm>
#include <optional>

#include "caf/message.hpp"

#include "base/time.hpp"

namespace natsvisor {

/// The time left until `deadline` at `now`; nullopt once it passed: the request is answered with
/// errc::timeout instead of being passed on.
inline std::optional<caf::timespan> time_left(steady_time deadline, steady_time now) {
  if (deadline <= now)
    return std::nullopt;
  return std::chrono::duration_cast<caf::timespan>(deadline - now);
}

/// `now + timeout`, saturated: a caller's timeout near timespan's maximum (meaning "no deadline
/// of my own") must not overflow into a deadline in the past.
inline steady_time deadline_after(steady_time now, caf::timespan timeout) {
  auto room = steady_time::max() - now;
  if (timeout >= room)
    return steady_time::max();
  return now + std::chrono::duration_cast<steady_time::duration>(timeout);
}

/// Until when the supervisor parks a request that waits for its URL's connection: `request_timeout`
/// from now, or the caller's own deadline if that comes first (a request without one, such as a
/// handle or a health check, waits `request_timeout`).
inline steady_time park_until(steady_time now, caf::timespan request_timeout,
                              std::optional<steady_time> caller_deadline) {
  auto bound = now + request_timeout;
  return caller_deadline ? std::min(bound, *caller_deadline) : bound;
}

/// The caller's timeout that a message-path request carries as its last element ((req, outgoing,
/// timeout) or (js_pub, outgoing, timeout)), if it carries one.
inline std::optional<caf::timespan> carried_timeout(const caf::message& m) {
  if (m.size() == 3 && m.match_element<caf::timespan>(2))
    return m.get_as<caf::timespan>(2);
  return std::nullopt;
}

/// Makes `m` (one that carries a timeout) carry `left` instead: what the next hop gets.
inline void carry_timeout(caf::message& m, caf::timespan left) {
  m.get_mutable_as<caf::timespan>(2) = left; // copy on write: other holders keep theirs
}

} // namespace natsvisor
