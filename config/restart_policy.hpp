#pragma once

#include <chrono>

#include "caf/timespan.hpp"

namespace natsvisor {

/// Restart configuration (validated elsewhere; assume values are sane).
struct restart_policy {
  /// Config key `max_reconnect_attempts`: restarts allowed per failure
  /// episode.
  int max_attempts = 5;

  /// Config key `reconnect_delay`: delay before the first restart of an
  /// episode.
  caf::timespan base_delay = std::chrono::seconds(2);

  /// Config key `backoff_multiplier` (>= 1).
  double multiplier = 2.0;

  /// Config key `backoff_cap`: upper bound of the delay before jitter.
  caf::timespan max_delay = std::chrono::seconds(30);

  /// Config key `backoff_jitter`: fraction in [0, 1] by which a delay may be
  /// shortened or lengthened, so that many connections failing together do
  /// not all come back at the same instant.
  double jitter = 0.2;

  /// At most this many restarts ...
  int max_restarts = 20;

  /// ... within this sliding window (config key `restart_window`). Unlike
  /// `max_attempts`, this limit survives the end of an episode and therefore
  /// catches connections that flap slower than `stable_period`.
  caf::timespan window = std::chrono::seconds(60);

  /// A connection that stays up this long ends the failure episode.
  caf::timespan stable_period = std::chrono::seconds(30);

  /// Delay before restart number `attempt` (1-based) of an episode, for a
  /// random draw in [0, 1): `min(max_delay, base_delay *
  /// multiplier^(attempt-1))` scaled by `1 + jitter * (2 * draw - 1)`,
  /// rounded to the nearest nanosecond, never negative and never above
  /// `max_delay * (1 + jitter)`. An `attempt` below 1 counts as 1. A `draw`
  /// outside [0, 1] is clamped into it (NaN counts as 0); a draw of exactly 1
  /// yields the supremum `min(...) * (1 + jitter)`.
  caf::timespan delay_for(int attempt, double draw) const;

  /// The largest total of delays an episode can wait before giving up (all
  /// draws at their maximum), for tests and docs: the sum of
  /// `delay_for(i, 1.0)` for `i` in `1..max_attempts`. An upper bound, since
  /// `max_restarts` may end an episode earlier.
  caf::timespan worst_case_total_delay() const;
};

} // namespace natsvisor
