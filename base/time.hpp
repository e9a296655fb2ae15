#pragma once

#include <chrono>
#include <cstdint>

#include "caf/timespan.hpp"

namespace natsvisor {

/// Every decision natsvisor makes runs on the monotonic clock: a wall-clock jump must neither
/// end a backoff early nor keep a failure episode open. Pure cores take the time as an
/// argument; only actors read the clock.
using steady_clock = std::chrono::steady_clock;
using steady_time = steady_clock::time_point;

/// Whole milliseconds, for nats.c's options and for log lines.
inline int64_t to_ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

/// At least 1 ms: nats.c treats 0 as "no timeout" or "default" in several calls.
inline int64_t to_ms_at_least_1(caf::timespan t) {
  auto ms = to_ms(t);
  return ms < 1 ? 1 : ms;
}

} // namespace natsvisor
