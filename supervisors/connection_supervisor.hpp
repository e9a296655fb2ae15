#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_addr.hpp"
#include "caf/message.hpp"
#include "caf/response_promise.hpp"
#include "caf/stateful_actor.hpp"

#include "config/settings.hpp"
#include "nats/handles.hpp"
#include "messages/types.hpp"
#include "supervisors/restart_policy.hpp"

namespace natsvisor {

/// What a parked request asked for: answered when the URL's shared connection comes up.
enum class request_kind {
  connection,
  jetstream,
  health,
  connection_scope,
  jetstream_scope,
  forward
};

struct parked_request {
  uint64_t id = 0;
  request_kind kind = request_kind::connection;
  caf::response_promise promise;
  caf::message forward; ///< for request_kind::forward: what the connection actor will serve
};

/// One supervised connection of a URL: the shared one (index 0) or a pool slot (1..size).
struct connection_slot {
  uint32_t index = 0;
  caf::actor child; ///< null while restarting, given up or closed
  uint64_t generation = 0;
  connection_state state = connection_state::closed;
  connection_handle conn; ///< valid while connected or reconnecting
  jetstream_handle js;    ///< this generation's context
  std::string js_problem; ///< why JetStream is unavailable, if it is
  failure_history history;
  bool closing = false; ///< closed on request: its exit is no failure
  uint64_t restarts = 0;
  std::string last_error; ///< without URL (the entry names it)
  /// Traffic of the generations that ended, so status() counts the URL's whole life.
  struct traffic {
    uint64_t in_msgs = 0, in_bytes = 0, out_msgs = 0, out_bytes = 0, reconnects = 0;
  } retired;
  std::string give_up_reason;
  // Pool slots: the current loan (0 = idle) and who holds it.
  uint64_t lease = 0;
  std::string holder;
  caf::timestamp leased_at;
};

struct lease_waiter {
  uint64_t id = 0;
  caf::response_promise promise;
  std::string holder;
};

/// A message-path subscription. The supervisor keeps it, so every new connection of the URL
/// subscribes it again.
struct subscription_record {
  uint64_t id = 0;
  std::string subject;
  std::string queue;
  caf::actor subscriber;
};

/// The supervisor's knowledge of one URL: the durable state that outlives connection actors.
struct url_entry {
  std::string key; ///< the URL as given; may hold credentials, never logged
  std::string url; ///< redacted
  connection_slot shared;
  std::vector<connection_slot> pool; ///< pool[i] has index i + 1
  bool closing = false;              ///< close_connection in progress: nothing new starts
  std::vector<parked_request> parked;
  std::deque<lease_waiter> waiters; ///< FIFO
  std::map<uint64_t, subscription_record> subscriptions;
  std::vector<std::function<void()>> on_closed; ///< run when every slot has stopped
  uint64_t active_scopes = 0;
  pool_status counters; ///< the cumulative counters; the rest is computed in status()
};

struct supervisor_state {
  ~supervisor_state();
  std::shared_ptr<const settings> cfg;
  std::map<std::string, url_entry> urls;
  /// Each live connection actor -> its URL's key and slot index.
  std::map<caf::actor_addr, std::pair<std::string, uint32_t>> children;
  std::vector<caf::actor> watchers;
  uint64_t next_id = 0; ///< parked requests, leases, waiters and subscriptions
  std::mt19937_64 rng{std::random_device{}()};
  natsStatistics* stats = nullptr;

  static inline const char* name = "natsvisor.supervisor";
};

using supervisor_type = caf::stateful_actor<supervisor_state>;

/// The connection supervisor: one shared connection actor per URL (on demand, and at start for
/// the configured `urls`) plus up to `connection_pool_size` pooled ones for leases; monitors
/// them, restarts failed ones as the restart policy decides, parks requests while a URL's
/// shared connection is (re)starting, gives up explicitly, and keeps the durable state
/// (subscriptions, pool, counters) across restarts. An empty URL means the configured default.
///
/// - (get_conn, url) -> connection_handle;   (get_js, url) -> jetstream_handle
/// - (scope, url) -> connection_scope;       (js_scope, url) -> jetstream_scope
/// - (lease, url, timeout) -> lease (timeout 0: lease_timeout) or errc::pool_exhausted
/// - (health, url) -> health_result;         (close_conn, url) -> unit once closed
/// - (reset, url) -> unit (revives a URL given up on);  (status) -> status_report
/// - (watch, actor) / (unwatch, actor): state_changed and lease_leaked events to that actor
/// - (pub, url, outgoing) -> unit; (pub, url, vector<outgoing>) -> count;
///   (req, url, outgoing, timeout) -> nats_message; (js_pub, url, outgoing, timeout) -> js_ack
/// - (sub, url, subject, queue, subscriber) -> id; (unsub, url, id)
caf::behavior connection_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg);

} // namespace natsvisor
