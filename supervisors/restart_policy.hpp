#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "caf/timespan.hpp"
#include "caf/timestamp.hpp"

/// The restart policy of the connection supervisor, kept free of actors,
/// clocks and random number generators: the current time and the random draw
/// are arguments, so every decision is reproducible and exactly testable.
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

/// Whether a failure can be recovered by a restart: the only place where
/// errors are sorted.
enum class failure_kind {
  /// Worth retrying, e.g. connection refused or lost.
  transient,
  /// Retrying cannot help, e.g. bad credentials or a malformed URL.
  permanent,
};

/// What the supervisor remembers about one URL's failures.
struct failure_history {
  /// Restarts in the current episode.
  int attempt = 0;

  /// When each restart was decided, oldest first (pruned to the window by
  /// `record_restart`).
  std::deque<caf::timestamp> restarts;

  /// When the current connection came up, if it did.
  std::optional<caf::timestamp> up_since;

  /// Connection is up: remember since when.
  void record_up(caf::timestamp now);

  /// Call when acting on a `decision::restart_after` decided at `now`: starts
  /// a new episode first if the connection had been up for at least
  /// `p.stable_period` (exactly as `decide` does), then increments `attempt`,
  /// appends `now` to `restarts`, drops entries older than `now - p.window`
  /// and clears `up_since`. Takes the whole policy rather than only the
  /// window so that `decide` and `record_restart` cannot disagree about when
  /// an episode ends. Afterwards, `attempt` equals the `attempt` of the
  /// decision acted upon.
  void record_restart(caf::timestamp now, const restart_policy& p);

  /// Explicit revive: forget everything.
  void reset();

  /// The number of restarts in the episode a failure at `now` belongs to:
  /// 0 if the connection had been up for at least `stable_period`, `attempt`
  /// otherwise.
  int attempts_in_episode(caf::timestamp now, caf::timespan stable_period) const;

  /// The number of recorded restarts at or after `now - window`, i.e. those
  /// that count toward `restart_policy::max_restarts`.
  int restarts_within(caf::timestamp now, caf::timespan window) const;
};

namespace decision {

/// Restart the child after `delay`.
struct restart_after {
  caf::timespan delay;
  /// Number this restart will have in its episode (1-based).
  int attempt;
};

/// Stop restarting the child.
struct give_up {
  /// Human readable: which limit was hit, e.g.
  /// "5 restart attempts exhausted", "20 restarts within 60s" or
  /// "permanent failure: <detail>".
  std::string reason;
};

} // namespace decision

/// The outcome of `decide`.
using restart_decision = std::variant<decision::restart_after, decision::give_up>;

/// Pure: what follows a child's failure at `now`. If the connection had been
/// up for at least `stable_period` before failing, the episode starts over
/// (attempt counts from 0). Gives up, checked in this order, when the failure
/// is permanent, when the episode's attempts are exhausted
/// (`attempt >= max_attempts`), or when `max_restarts` restarts already
/// happened within the window ending at `now` (restarts exactly `window`
/// before `now` still count; the window is not reset by a stable period).
/// Otherwise restarts after `delay_for(attempt + 1, draw)`. Does not modify
/// `h`: call `h.record_restart(now, p)` when acting on a restart.
restart_decision decide(const restart_policy& p, const failure_history& h, failure_kind kind,
                        std::string_view detail, caf::timestamp now, double draw);

} // namespace natsvisor
