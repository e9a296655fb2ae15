#include "config/restart_policy.hpp"

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

} // namespace natsvisor
