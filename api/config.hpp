#pragma once

#include "caf/actor_system_config.hpp"

#include "config/settings.hpp"

namespace natsvisor {

/// Declares natsvisor's keys (so `--help` lists them and the command line accepts them),
/// registers its message types and its error category, and sets latency-friendly defaults for
/// CAF's scheduler where nothing is set yet (see set_scheduler_defaults). Call before parsing
/// the config: a config file or the command line overrides those defaults.
void add_to(caf::actor_system_config& cfg);

/// CAF's work-stealing workers, once idle, poll in a "moderate" phase that sleeps 50 us
/// (sleep_for, ~100 us with the kernel's timer slack) between polls, and a message from another
/// thread (a nats.c callback, a detached actor, the blocking API) wakes such a worker only after
/// its sleep: every hop onto an idle worker costs 50-100 us. natsvisor skips that phase
/// (`work-stealing.moderate-poll-attempts` = 0): idle workers go from a short spin straight to
/// CAF's condition variable, which an enqueue from any thread signals at once. That costs a
/// wake-up per message when many arrive (100 concurrent requesters: 31-37k instead of 36-44k
/// req/s). Measured on 2 cores (medians of 7, quick bench, several runs): sequential request
/// 0.60-0.66x raw nats.c -> 0.83-0.87x, actor overhead per round trip 150-190 us -> 75-80 us;
/// publish and get_connection unchanged within noise. The number of workers stays CAF's (one per
/// core gave concurrency back but let a flooded URL starve a healthy one: see api/config.cpp).
/// Keys already set in `cfg` are left alone; set it (or pass
/// `--work-stealing.moderate-poll-attempts=500`, CAF's default) to opt out.
void set_scheduler_defaults(caf::actor_system_config& cfg);

/// An actor_system_config with natsvisor already added.
class config : public caf::actor_system_config {
 public:
  config();
};

} // namespace natsvisor
