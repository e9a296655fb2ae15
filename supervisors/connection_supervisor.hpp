#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_addr.hpp"
#include "caf/response_promise.hpp"
#include "caf/stateful_actor.hpp"

#include "config/settings.hpp"
#include "messages/handles.hpp"
#include "messages/types.hpp"
#include "supervisors/restart_policy.hpp"

namespace natsvisor {

/// What a parked request asked for: answered when its URL's connection comes up.
enum class request_kind { connection, jetstream, health, connection_scope, jetstream_scope };

struct parked_request {
  uint64_t id = 0;
  request_kind kind = request_kind::connection;
  caf::response_promise promise;
};

/// The supervisor's knowledge of one URL: the durable state that outlives connection actors.
struct url_entry {
  std::string key;  ///< the URL as given; may hold credentials, never logged
  std::string url;  ///< redacted
  caf::actor child;
  uint64_t generation = 0;
  connection_state state = connection_state::connecting;
  connection_handle conn;           ///< valid while connected or reconnecting
  jetstream_handle js;              ///< this generation's context
  std::string js_problem;           ///< why JetStream is unavailable, if it is
  failure_history history;
  std::vector<parked_request> parked;
  std::vector<caf::response_promise> close_waiters;
  bool closing = false;
  uint64_t restarts = 0;
  uint64_t active_scopes = 0;
  std::string last_error;  ///< redacted
  std::string give_up_reason;
};

struct supervisor_state {
  ~supervisor_state();
  std::shared_ptr<const settings> cfg;
  std::map<std::string, url_entry> urls;
  std::map<caf::actor_addr, std::string> children;  ///< child -> key of its URL
  std::vector<caf::actor> watchers;
  uint64_t next_park_id = 0;
  std::mt19937_64 rng{std::random_device{}()};
  natsStatistics* stats = nullptr;

  static inline const char* name = "natsvisor.supervisor";
};

using supervisor_type = caf::stateful_actor<supervisor_state>;

/// The connection supervisor: spawns one connection actor per URL (on demand, and at start for
/// the configured `urls`), monitors them, restarts failed ones as the restart policy decides,
/// parks requests while a URL is (re)starting, and gives up explicitly.
///
/// Requests (an empty URL means the configured default):
/// - (get_conn, url) -> connection_handle;   (get_js, url) -> jetstream_handle
/// - (scope, url) -> connection_scope;       (js_scope, url) -> jetstream_scope
/// - (health, url) -> health_result;         (close_conn, url) -> unit (once closed)
/// - (reset, url) -> unit (revives a URL given up on);  (status) -> status_report
/// - (watch, actor) / (unwatch, actor): state_changed events to that actor
caf::behavior connection_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg);

} // namespace natsvisor
