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
/// CAF's condition variable, which an enqueue from any thread signals at once. Keys already set
/// in `cfg` are left alone; set the key (or pass `--work-stealing.moderate-poll-attempts=500`,
/// CAF's default) to opt out. bench/README.md has the measurements.
void set_scheduler_defaults(caf::actor_system_config& cfg);

/// An actor_system_config with natsvisor already added.
class config : public caf::actor_system_config {
 public:
  config();
};

} // namespace natsvisor
