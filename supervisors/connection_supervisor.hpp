#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_addr.hpp"
#include "caf/message.hpp"
#include "caf/response_promise.hpp"
#include "caf/stateful_actor.hpp"

#include "base/credit_table.hpp"
#include "base/deadline_table.hpp"
#include "base/publish_credit.hpp"
#include "config/settings.hpp"
#include "messages/types.hpp"
#include "nats/handles.hpp"
#include "supervisors/connection_slot.hpp"
#include "supervisors/lease_pool.hpp"
#include "supervisors/publish_outbox.hpp"
#include "supervisors/route_table.hpp"
#include "supervisors/subscription_registry.hpp"

namespace natsvisor {

/// What a parked request asked for: answered when the URL's shared connection comes up.
enum class request_kind {
  connection,
  jetstream,
  health,
  connection_scope,
  jetstream_scope,
  forward ///< the message path: served by the connection actor
};

struct parked_request {
  request_kind kind = request_kind::connection;
  caf::response_promise promise;
  caf::message forward; ///< request_kind::forward: the request for the connection actor
  /// A forwarded request with a timeout of its own: when its caller's wait ends, wherever it
  /// waits (base/request_deadline.hpp).
  std::optional<steady_time> deadline;
};

/// A message-path publish the supervisor holds: the message for the connection actor and its
/// sender's promise (async for fire and forget).
struct held_publish {
  caf::response_promise promise;
  caf::message msg;
};

struct lease_waiter {
  caf::response_promise promise;
  std::string holder;
};

/// What the actor keeps beside one slot's pure state machine: the child and what it reported.
struct slot_runtime {
  slot_runtime(const restart_policy& p, uint64_t last_generation) : machine(p, last_generation) {}
  connection_slot machine;
  caf::actor child;       ///< the current child; null when none runs
  connection_handle conn; ///< valid while the slot is usable
  jetstream_handle js;    ///< shared slot: this generation's context
  std::string js_problem; ///< why JetStream is unavailable, if it is
  traffic current;        ///< the current generation's counters, as it last reported them
  traffic retired;        ///< of the generations that ended
  std::string holder;     ///< pool slots: who holds the lease
  steady_time leased_at;
  /// Make before break: the replacement prepared beside `child` while its server is in lame
  /// duck mode, with what it reported; it becomes `child` at the switch-over.
  struct replacement {
    caf::actor child;
    connection_handle conn;
    jetstream_handle js;
    std::string js_problem;
  } next;
  caf::actor retiring; ///< the replaced child, retired and not yet ended
};

/// The supervisor's knowledge of one URL. Erased once closed.
struct url_entry {
  /// `generations`: what a previous life of the URL reached (shared, highest pooled).
  url_entry(std::string k, const settings& cfg, std::pair<uint64_t, uint64_t> generations);
  std::string key; ///< the URL as given; may hold credentials, never logged
  std::string url; ///< redacted
  std::vector<slot_runtime> slots; ///< [0]: the shared connection; [i]: pool slot i
  deadline_table<parked_request> parked;
  lease_pool<lease_waiter> pool;
  /// Publishes held while the shared connection cannot take them, written once it can.
  publish_outbox<held_publish> outbox;
  /// After the shared connection came (back) up: publishes are held until the child answered
  /// the latest pub_resume (`resume_token`), so none it still hands back overtakes the held ones.
  bool resuming = false;
  uint64_t resume_token = 0;
  bool over_bound_logged = false; ///< one warning per filling of the buffer
  /// The message path's credit (base/publish_credit.hpp); senders' publishers share it.
  std::shared_ptr<publish_credit> credit;
  /// When the last warning about refused fire-and-forget publishes was logged: at most one a
  /// second (a credit hovering at its bound refuses and admits by turns).
  steady_time overload_logged_at{};
  /// Fire-and-forget publishes refused for credit, not yet reported to watchers (one event per
  /// sweep, not one per publish: an overload must not flood the watchers' mailboxes).
  publish_cost overload_unreported;
  std::string gave_up_reason; ///< the URL gave up (until reset): requests fail at once
  errc gave_up_code = errc::gave_up; ///< ... with this code (a permanent failure's own)
  bool closing = false;
  caf::error stop_reason; ///< while closing: what requests in flight are answered with
  std::vector<std::function<void()>> on_closed; ///< run once the close completed
  uint64_t active_scopes = 0;
  uint64_t pool_closed = 0; ///< pooled connection actors that ended
  uint64_t leaks = 0;
};

struct supervisor_state {
  struct child_ref {
    std::string key;
    uint32_t index;
    uint64_t generation;
    std::shared_ptr<publish_ledger> ledger; ///< its part of the URL's credit
  };
  std::shared_ptr<const settings> cfg;
  std::map<std::string, url_entry> urls;
  std::map<caf::actor_addr, child_ref> children;
  /// Each URL's credit, kept for good: publishers hold it across closes of their URL.
  std::map<std::string, std::shared_ptr<publish_credit>> credits;
  /// Generations URLs reached before they were closed and forgotten (shared, highest pooled),
  /// so a URL opened again continues counting. Bounded: the oldest are dropped past the bound.
  std::map<std::string, std::pair<uint64_t, uint64_t>> past_generations;
  subscription_registry<caf::actor> subscriptions{1};
  std::vector<caf::actor> watchers;
  uint64_t next_id = 0; ///< parked requests, lease waiters, subscriptions
  std::mt19937_64 rng{std::random_device{}()};
  bool shutting_down = false;
  caf::error exit_reason;
  /// The connection router this supervisor serves under (null for none): told when the URL has
  /// nothing left, so that it may end this actor (see supervisors/route_table.hpp).
  caf::actor router;

  static inline const char* name = "natsvisor.supervisor";
};

using supervisor_type = caf::stateful_actor<supervisor_state>;

/// What a URL supervisor starts with (from the router).
struct url_start {
  std::string key;                          ///< its one URL (may hold credentials: never logged)
  caf::actor router;
  uint64_t first_id = 0;                    ///< its ids (subscriptions...) count on from here
  std::pair<uint64_t, uint64_t> generations; ///< what the URL's previous lives reached
  std::vector<caf::actor> watchers;          ///< told every state change, like later ones
  bool eager = false;                        ///< a configured URL: connect at once
  /// The URL's message-path credit, owned by the router: publishers made by an earlier life of
  /// this URL's supervisor keep charging the same one.
  std::shared_ptr<publish_credit> credit;
};

/// A URL supervisor: for its URL, a shared connection actor (on demand, or at once for a
/// configured URL) plus up to `connection_pool_size` pooled ones for leases. It feeds
/// what happens to each into the slot's pure state machine and does what that decides; parks
/// requests (bounded, deadline-ordered) while a URL's shared connection is (re)starting; keeps
/// the durable state (subscriptions, pool, counters) across restarts; never calls nats.c.
/// It answers connection_api (api/protocol.hpp) for its URL, delegated by the router; the
/// messages from its connection actors are internal. An exit message stops it: every connection is closed and every waiting request answered
/// with errc::service_stopped before it quits.
/// The router spawns one per URL in use, so that a URL that floods or hangs costs the others
/// nothing but the router's hop.
caf::behavior url_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg,
                             url_start start);

/// A message to the router, or a stash of one while its URL supervisor is asked to retire.
struct routed_message {
  caf::response_promise promise;
  caf::message msg;
};

struct router_state {
  std::shared_ptr<const settings> cfg;
  route_table<caf::actor, routed_message> routes{10000};
  std::vector<caf::actor> watchers;
  /// Each URL's last answer to status: used when its supervisor is too busy to answer in time.
  std::unordered_map<std::string, status_report> last_status;
  /// Each URL's message-path credit while it is in use (base/credit_table.hpp): publishers hold
  /// it and the router, whose handle they hold, outlives every URL supervisor.
  credit_table credits{max_url_credits};
  bool shutting_down = false;
  caf::error exit_reason;

  static inline const char* name = "natsvisor.router";
};

using router_type = caf::stateful_actor<router_state>;

/// The connection service users hold: a thin router (supervisors/connection_router.cpp) in front
/// of one URL supervisor per URL. It implements connection_api (api/protocol.hpp): every message
/// naming a URL is delegated (the requester's promise goes with it) to that URL's supervisor, the
/// few about every URL (status, watch, clean-up, exit) are sent to each and their answers merged.
caf::behavior connection_supervisor(router_type* self, std::shared_ptr<const settings> cfg);

} // namespace natsvisor
