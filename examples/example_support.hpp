#pragma once

// What several examples share besides the local server: the config behind CAF_MAIN (with an
// exit status), a timestamped line printer, naps that wake on Ctrl-C, a watcher that prints
// state changes, the status table, and "make sure this JetStream stream exists".

#include <chrono>
#include <optional>
#include <string>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/config.hpp"
#include "api/connection_service.hpp"

#include "local_server.hpp"

namespace natsvisor_examples {

/// The config of every example's caf_main: natsvisor's keys, types and errors (the
/// `--natsvisor.<key>=<value>` options, see --help), plus an exit status. CAF 0.17's
/// exec_main (behind CAF_MAIN) ignores caf_main's result, so caf_main hands it to
/// `exit_with`; the config outlives the actor system, and its destructor ends the process with
/// a non-zero status once the system is gone.
class config : public natsvisor::config {
 public:
  ~config() override;
  void exit_with(int status) const { status_ = status; }

 private:
  mutable int status_ = 0;
};

/// True when the command line or config file set `natsvisor.<key>`.
bool given(const caf::actor_system_config& cfg, const char* key);

/// The natsvisor settings from the command line, NATS_URL and defaults; log_level "warn" unless
/// given (the examples print what matters themselves). Prints the error and returns none when
/// the configuration is invalid.
caf::optional<natsvisor::settings> settings_from(const caf::actor_system_config& cfg);

/// What most examples start with: valid settings and a nats-server at their URL (started on
/// loopback when none listens there; it lives as long as the returned value). On failure it
/// sets the exit status (2: invalid configuration, 1: no server) and returns none.
struct prepared {
  natsvisor::settings settings;
  server_at server;
};
std::optional<prepared> prepare(const config& cfg);

/// Prints "[ 1.234s] who     text" (the time since start), one line at a time from any thread.
void say(const char* who, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

/// `t` in whole milliseconds, for printing with %lld.
inline long long ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

/// From now on SIGINT and SIGTERM only set a flag that nap() and interrupted() report.
void catch_interrupts();
bool interrupted();

/// Sleeps `d` (this is main's thread, not an actor), waking early and returning false on Ctrl-C.
bool nap(caf::timespan d);

/// Prints one line per state change of any URL (give it to svc.watch).
caf::behavior watcher(caf::event_based_actor* self);

/// Polls the status until the default URL is connected with at least `min_generation`:
/// that generation, or 0 when `deadline` passed first.
uint64_t wait_connected(natsvisor::connection_service& svc, uint64_t min_generation,
                        caf::timespan deadline);

/// Prints the service's status as a table: state, generation, restarts, reconnects, traffic.
void print_status(natsvisor::connection_service& svc);

/// Adds the file-stored stream `name` on the subject pattern `subjects`, unless it exists.
/// Blocks for a round trip: call it from blocking code or a detached actor.
caf::error ensure_stream(const natsvisor::jetstream_handle& js, const char* name,
                         const char* subjects);

} // namespace natsvisor_examples
