#include "supervisors/restart_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace natsvisor {

namespace {

using ns_rep = caf::timespan::rep;

/// Delay before jitter, in nanoseconds, as a double so that a large
/// `multiplier^(attempt-1)` saturates at infinity instead of overflowing.
double nominal_ns(const restart_policy& p, int attempt) {
  auto cap = static_cast<double>(std::max(p.max_delay.count(), ns_rep{0}));
  auto base = static_cast<double>(std::max(p.base_delay.count(), ns_rep{0}));
  if (base == 0.0)
    return 0.0; // avoids 0 * inf = NaN for huge attempts
  auto raw = base * std::pow(p.multiplier, std::max(attempt, 1) - 1);
  // Written so that an infinite `raw` also ends up at the cap.
  return raw < cap ? raw : cap;
}

double jitter_of(const restart_policy& p) {
  return std::clamp(p.jitter, 0.0, 1.0);
}

caf::timespan to_timespan(double ns) {
  constexpr auto max_ns = static_cast<double>(std::numeric_limits<ns_rep>::max() / 2);
  ns = std::clamp(ns, 0.0, max_ns);
  return caf::timespan{static_cast<ns_rep>(std::llround(ns))};
}

/// Shortest exact spelling, so reasons read like the configuration values.
std::string format_duration(caf::timespan x) {
  auto n = x.count();
  if (n != 0 && n % 1'000'000'000 == 0)
    return std::to_string(n / 1'000'000'000) + "s";
  if (n != 0 && n % 1'000'000 == 0)
    return std::to_string(n / 1'000'000) + "ms";
  if (n != 0 && n % 1'000 == 0)
    return std::to_string(n / 1'000) + "us";
  return std::to_string(n) + "ns";
}

} // namespace

caf::timespan restart_policy::delay_for(int attempt, double draw) const {
  if (!(draw >= 0.0)) // also catches NaN
    draw = 0.0;
  else if (draw > 1.0)
    draw = 1.0;
  auto j = jitter_of(*this);
  auto scaled = nominal_ns(*this, attempt) * (1.0 + j * (2.0 * draw - 1.0));
  // Rounding must not push a capped delay past the documented bound.
  auto upper = static_cast<double>(std::max(max_delay.count(), ns_rep{0})) * (1.0 + j);
  return to_timespan(std::min(scaled, upper));
}

caf::timespan restart_policy::worst_case_total_delay() const {
  auto total = caf::timespan{0};
  auto cap = static_cast<double>(std::max(max_delay.count(), ns_rep{0}));
  for (int i = 1; i <= max_attempts; ++i) {
    if (nominal_ns(*this, i) >= cap) {
      // Every remaining attempt waits the same capped delay, so a large
      // max_attempts costs no loop iterations.
      total += delay_for(i, 1.0) * (max_attempts - i + 1);
      break;
    }
    total += delay_for(i, 1.0);
  }
  return total;
}

void failure_history::record_up(caf::timestamp now) {
  up_since = now;
}

void failure_history::record_restart(caf::timestamp now, const restart_policy& p) {
  attempt = attempts_in_episode(now, p.stable_period) + 1;
  restarts.push_back(now);
  // Not just popping the front: the system clock may have jumped backwards,
  // leaving the deque out of order.
  auto horizon = now - p.window;
  restarts.erase(std::remove_if(restarts.begin(), restarts.end(),
                                [horizon](caf::timestamp t) { return t < horizon; }),
                 restarts.end());
  up_since.reset();
}

void failure_history::reset() {
  attempt = 0;
  restarts.clear();
  up_since.reset();
}

int failure_history::attempts_in_episode(caf::timestamp now, caf::timespan stable_period) const {
  if (up_since && now - *up_since >= stable_period)
    return 0;
  return attempt;
}

int failure_history::restarts_within(caf::timestamp now, caf::timespan window) const {
  auto horizon = now - window;
  return static_cast<int>(std::count_if(restarts.begin(), restarts.end(),
                                        [horizon](caf::timestamp t) { return t >= horizon; }));
}

restart_decision decide(const restart_policy& p, const failure_history& h, failure_kind kind,
                        std::string_view detail, caf::timestamp now, double draw) {
  if (kind == failure_kind::permanent) {
    std::string reason = "permanent failure";
    if (!detail.empty()) {
      reason += ": ";
      reason += detail;
    }
    return decision::give_up{std::move(reason)};
  }
  auto attempt = h.attempts_in_episode(now, p.stable_period);
  if (attempt >= p.max_attempts) {
    auto reason
      = std::to_string(p.max_attempts)
        + (p.max_attempts == 1 ? " restart attempt exhausted" : " restart attempts exhausted");
    return decision::give_up{std::move(reason)};
  }
  // The history may have been pruned at an earlier time, so count here.
  if (h.restarts_within(now, p.window) >= p.max_restarts) {
    auto reason = std::to_string(p.max_restarts)
                  + (p.max_restarts == 1 ? " restart within " : " restarts within ")
                  + format_duration(p.window);
    return decision::give_up{std::move(reason)};
  }
  return decision::restart_after{p.delay_for(attempt + 1, draw), attempt + 1};
}

} // namespace natsvisor
