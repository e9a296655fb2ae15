#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/time.hpp"
#include "config/restart_policy.hpp"
#include "messages/errors.hpp"

/// The restart policy of the connection supervisor, kept free of actors,
/// clocks and random number generators: the current time and the random draw
/// are arguments, so every decision is reproducible and exactly testable.
namespace natsvisor {

/// Whether a failure can be recovered by a restart: the only place where
/// errors are sorted.
enum class failure_kind {
  /// Worth retrying, e.g. connection refused or lost.
  transient,
  /// Retrying cannot help, e.g. bad credentials or a malformed URL.
  permanent,
};

/// Pure: whether a child that ended with `code` may be cured by a restart. Bad input
/// (invalid_url, invalid_config) and a refusal of the credentials or of TLS (auth_failed,
/// tls_failed) are permanent: a fresh connection with the same configuration meets the same
/// refusal, and each retry would only add one more authorization error at the server.
/// Everything else (connect_failed, connection_closed, a crash, ...) is transient.
failure_kind classify(errc code);

/// What the supervisor remembers about one URL's failures.
struct failure_history {
  /// Restarts in the current episode.
  int attempt = 0;

  /// When each restart was decided, oldest first (pruned to the window by
  /// `record_restart`).
  std::deque<steady_time> restarts;

  /// When the current connection came up, if it did.
  std::optional<steady_time> up_since;

  /// Connection is up: remember since when.
  void record_up(steady_time now);

  /// The connection stopped being up at `now` (nats.c lost the server, or the child failed).
  /// If it had been up for at least `p.stable_period`, the failure episode ends here: the next
  /// restart is attempt 1 again. nats.c always reports a disconnect before it gives up, so this
  /// is where a long good period must be credited, not at the later failure.
  void record_down(steady_time now, const restart_policy& p);

  /// Call when acting on a `decision::restart_after` decided at `now`: starts
  /// a new episode first if the connection had been up for at least
  /// `p.stable_period` (exactly as `decide` does), then increments `attempt`,
  /// appends `now` to `restarts`, drops entries older than `now - p.window`
  /// and clears `up_since`. Takes the whole policy rather than only the
  /// window so that `decide` and `record_restart` cannot disagree about when
  /// an episode ends. Afterwards, `attempt` equals the `attempt` of the
  /// decision acted upon.
  void record_restart(steady_time now, const restart_policy& p);

  /// Explicit revive: forget everything.
  void reset();

  /// The number of restarts in the episode a failure at `now` belongs to:
  /// 0 if the connection had been up for at least `stable_period`, `attempt`
  /// otherwise.
  int attempts_in_episode(steady_time now, caf::timespan stable_period) const;

  /// The number of recorded restarts at or after `now - window`, i.e. those
  /// that count toward `restart_policy::max_restarts`.
  int restarts_within(steady_time now, caf::timespan window) const;
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
                        std::string_view detail, steady_time now, double draw);

} // namespace natsvisor
