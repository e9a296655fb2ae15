#include "supervisors/restart_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace natsvisor {

namespace {

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

failure_kind classify(errc code) {
  switch (code) {
    case errc::invalid_url:
    case errc::invalid_config:
    case errc::auth_failed:
    case errc::tls_failed: return failure_kind::permanent;
    default: return failure_kind::transient;
  }
}

void failure_history::record_up(steady_time now) {
  up_since = now;
}

void failure_history::record_down(steady_time now, const restart_policy& p) {
  attempt = attempts_in_episode(now, p.stable_period);
  up_since.reset();
}

void failure_history::record_restart(steady_time now, const restart_policy& p) {
  attempt = attempts_in_episode(now, p.stable_period) + 1;
  restarts.push_back(now);
  // Not just popping the front: a caller may pass times out of order,
  // leaving the deque out of order.
  auto horizon = now - p.window;
  restarts.erase(std::remove_if(restarts.begin(), restarts.end(),
                                [horizon](steady_time t) { return t < horizon; }),
                 restarts.end());
  up_since.reset();
}

void failure_history::reset() {
  attempt = 0;
  restarts.clear();
  up_since.reset();
}

int failure_history::attempts_in_episode(steady_time now, caf::timespan stable_period) const {
  if (up_since && now - *up_since >= stable_period)
    return 0;
  return attempt;
}

int failure_history::restarts_within(steady_time now, caf::timespan window) const {
  auto horizon = now - window;
  return static_cast<int>(std::count_if(restarts.begin(), restarts.end(),
                                        [horizon](steady_time t) { return t >= horizon; }));
}

restart_decision decide(const restart_policy& p, const failure_history& h, failure_kind kind,
                        std::string_view detail, steady_time now, double draw) {
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
