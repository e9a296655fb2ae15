#pragma once

// A caller's timeout bounds the whole wait of its request, wherever the request waits: parked in
// the supervisor while the URL's connection (re)starts, queued or held in the connection actor,
// handed back after a failed connection and parked again, in flight. The supervisor turns the
// caller's timeout into a deadline once, when the request arrives, and every later hop passes
// that deadline on unchanged, so no hop (and no mailbox) starts the caller's timeout afresh.
// Pure (the actors read the clock): tested in tests/core.

#include <algorithm>
#include <optional>

#include "caf/message.hpp"
#include "caf/meta/type_name.hpp"

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
                              std::optional<steady_time> deadline) {
  auto bound = now + request_timeout;
  return deadline ? std::min(bound, *deadline) : bound;
}

/// The caller's deadline, as a message-path request carries it between natsvisor's own actors
/// (supervisor -> connection actor -> handed back: (req, outgoing, caller_deadline) or (js_pub,
/// outgoing, caller_deadline)). An instant, not a duration: a duration would restart at every
/// hop that reads it, so the time a request spends in a mailbox (a connection actor blocked in a
/// write, say) would be added to its caller's wait.
struct caller_deadline {
  steady_time at;
};

/// Local messages only: the instant travels as it is (a steady_clock instant means nothing in
/// another process), so the inspector writes no field; never send one over a network.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, caller_deadline&) {
  return f(caf::meta::type_name("caller_deadline"));
}

/// The deadline a message-path request carries as its last element, if it carries one.
inline std::optional<steady_time> carried_deadline(const caf::message& m) {
  if (m.size() == 3 && m.match_element<caller_deadline>(2))
    return m.get_as<caller_deadline>(2).at;
  return std::nullopt;
}

} // namespace natsvisor
