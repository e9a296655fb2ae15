#pragma once

// The service manager: named services with an initialize / cleanup lifecycle,
// started at start-up or on first use, handed to each other by message, stopped
// in reverse start order.
//
// A service is an actor that answers two requests from the manager:
//
//   (svc_init, caf::actor manager) -> empty reply when ready, or a caf::error
//   (svc_clean)                    -> empty reply once its cleanup is done
//
// During initialize a service may ask the manager for the services it needs
// (`request_service(self, manager, "name")`); they are started first, so they
// stop after it.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"
#include "caf/response_promise.hpp"
#include "caf/stateful_actor.hpp"

#include "api/requests.hpp"
#include "config/settings.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

/// Spawns a service actor (not yet initialized). Runs inside the manager actor:
/// it must not block. An exception or an invalid handle counts as a failed
/// start (errc::invalid_config).
using service_factory = std::function<caf::actor(caf::actor_system&, const settings&)>;

/// A named service. Eager services start when the manager starts, in definition
/// order; the others on first use.
struct service_definition {
  std::string name;
  service_factory make;
  bool eager = false;
};

/// The name the connection service is registered under.
constexpr const char* connection_service_name = "connection";

/// The connection service (the connection supervisor) as a lazy service named
/// "connection".
service_definition connection_service_definition();

/// Deadline of a service's cleanup during stop; initialize uses
/// `settings::request_timeout`.
/// How long a service may take to initialize: longer than request_timeout, so that a service
/// waiting in its initialize for a connection reports the connection's own typed error (with
/// its cause) rather than a bare init timeout.
inline caf::timespan init_deadline(const settings& cfg) {
  return cfg.request_timeout + std::chrono::seconds(5);
}

constexpr caf::timespan service_cleanup_deadline = std::chrono::seconds(30);

/// Asks the manager for a service by name: answered with its caf::actor once it
/// is initialized (started on first use), errc::unknown_service, or the error
/// its initialize failed with.
template <class Self>
auto request_service(Self* self, const caf::actor& manager, std::string name,
                     caf::timespan deadline = default_request_deadline) {
  return self->request(manager, deadline, get_svc_atom_v, std::move(name));
}

// -- pure parts
// ---------------------------------------------------------------------------

/// Pure: errc::invalid_config naming the first empty name, missing factory or
/// duplicate name; no error otherwise.
caf::error validate(const std::vector<service_definition>& defs);

/// Pure: the chain `requester -> wanted -> ... -> requester` when `wanted`
/// already waits (directly or through others) for `requester` to finish
/// initializing; empty when asking for `wanted` closes no cycle. `awaits` maps
/// each initializing service to the services it asked for and still waits on.
std::vector<std::string> find_cycle(const std::map<std::string, std::set<std::string>>& awaits,
                                    const std::string& requester, const std::string& wanted);

/// Pure: the error a requester receives when service `name` failed to
/// initialize with `err`. A natsvisor error keeps its code and URL and gains
/// the name in its detail; a CAF request timeout becomes errc::timeout and a
/// service that exited becomes errc::service_stopped; any other error is passed
/// on as it is.
caf::error init_failure(const std::string& name, const caf::error& err);

// -- the manager actor
// ----------------------------------------------------------------------

struct service_manager_state {
  /// Called with the service's handle or the reason it could not be started.
  using waiter = std::function<void(caf::expected<caf::actor>)>;

  struct starting_service {
    caf::actor handle;
    std::vector<waiter> waiters;
  };

  struct running_service {
    std::string name;
    caf::actor handle;
  };

  /// Only non-empty when the manager dies without being stopped: its services
  /// follow it.
  ~service_manager_state();

  std::shared_ptr<const settings> cfg;
  std::vector<service_definition> defs;
  std::vector<running_service> started;             ///< in start order
  std::map<std::string, starting_service> starting; ///< initializing right now
  std::map<std::string, std::set<std::string>> awaits;
  /// How the start of the eager services ended (no error: all started); empty while it runs.
  std::optional<caf::error> eager_outcome;
  std::vector<caf::response_promise> ready_waiters; ///< svc_ready asked before eager_outcome
  /// Whoever asked for the stop; answered once every service is cleaned up.
  std::vector<caf::response_promise> stop_waiters;

  /// True from the first svc_stop on: the manager is then draining or stopping (its behavior),
  /// and starts that end are refused to their requesters.
  bool stop_requested() const noexcept { return !stop_waiters.empty(); }

  static inline const char* name = "natsvisor.service_manager";
};

using service_manager_actor = caf::stateful_actor<service_manager_state>;

/// The manager's behavior. Its states, one behavior each:
///   running  -(svc_stop)->  draining  -(no start in progress)->  stopping  -(all cleaned)->  exit
/// running serves and starts services; draining lets the starts in progress finish and starts
/// nothing new; stopping cleans the started services up, last started first. Stray messages
/// are dropped without their contents being printed or logged. Requests:
/// - (get_svc, name) -> caf::actor | errc::unknown_service | the init error
/// (see
///   init_failure) | errc::service_stopped once stopping | errc::invalid_config
///   on a dependency cycle. Many concurrent first requests: one spawn, one
///   initialize.
/// - (svc_list) -> std::vector<std::string>: the started services in start
/// order.
/// - (svc_ready) -> empty reply once the eager services are started, or the
/// first eager
///   failure (later eager services are then not started).
/// - (svc_stop) -> empty reply once every started service was cleaned up, last
/// started
///   first (each waited for up to service_cleanup_deadline) and told to exit;
///   then the manager exits. Starts in progress are finished first; nothing new
///   starts.
/// A started service that exits by itself is dropped from the list and restarts
/// on next use.
caf::behavior service_manager_behavior(service_manager_actor* self,
                                       std::shared_ptr<const settings> cfg,
                                       std::vector<service_definition> defs);

/// Validates the definitions and spawns the manager (which starts the eager
/// services).
caf::expected<caf::actor> spawn_service_manager(caf::actor_system& sys, settings cfg,
                                                std::vector<service_definition> defs);

// -- blocking façade
// --------------------------------------------------------------------------

/// Thrown by the service_manager constructor; `error()` is the reason.
class service_error : public std::runtime_error {
 public:
  explicit service_error(caf::error err);
  const caf::error& error() const noexcept { return err_; }

 private:
  caf::error err_;
};

/// The service manager for blocking code, RAII for the whole (the C++ form of
/// `async with ServiceManager(config) as services`): the constructor starts the
/// eager services and the destructor stops every started service, last started
/// first. Event-based actors use `actor()` with request_service instead, and
/// must not call these blocking functions.
class service_manager {
 public:
  /// Registers `defs` plus the connection service (first, lazy) unless `defs`
  /// names one "connection", and waits until the eager services are started.
  /// Throws service_error for invalid definitions or a failed eager service
  /// (the ones started before are stopped).
  service_manager(caf::actor_system& sys, settings cfg, std::vector<service_definition> defs = {});
  /// Stops every service.
  ~service_manager();
  service_manager(const service_manager&) = delete;
  service_manager& operator=(const service_manager&) = delete;

  /// The manager actor, for request_service from actors.
  const caf::actor& actor() const noexcept { return manager_; }
  const settings& config() const noexcept { return cfg_; }

  /// The service, started now if it was not (errc::service_stopped after
  /// stop()).
  caf::expected<caf::actor> get(const std::string& name);

  /// The started services in start order (empty after stop()).
  std::vector<std::string> started();

  /// Stops the services in reverse start order and waits until the manager is
  /// gone; idempotent.
  void stop();

 private:
  caf::actor_system& sys_;
  settings cfg_;
  size_t service_count_ = 0;
  caf::actor manager_;
};

} // namespace natsvisor
