#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nats/nats.h>

#include "caf/message.hpp"
#include "caf/response_promise.hpp"
#include "caf/stateful_actor.hpp"

#include "actors/direct_replies.hpp"
#include "actors/request_table.hpp"
#include "base/publish_credit.hpp"
#include "base/time.hpp"
#include "config/settings.hpp"
#include "messages/types.hpp"
#include "nats/callbacks.hpp"
#include "nats/handles.hpp"

namespace natsvisor {

namespace detail {
struct subscription_flow;
} // namespace detail

/// What a connection is for: the role decides what it sets up.
enum class connection_role : uint8_t {
  shared, ///< the URL's shared connection: handles, JetStream, the message path
  pooled, ///< a lease-pool connection: only the bare connection (no subscription, no JetStream)
};

/// A request waiting for something from the server, in the connection actor's request table.
struct pending_request {
  enum kind_t : uint8_t {
    reply,      ///< a message-path request: the reply message
    js_ack,     ///< a JetStream publish: the acknowledgement
    health,     ///< a health check: the round trip through the own inbox
    subscribed, ///< a subscribe: the round trip after the SUB, so the server has it
    js_check,   ///< internal: whether JetStream serves this account
    js_lookup,  ///< a JetStream publish answered "no responders": does a stream capture it?
    js_retry,   ///< a JetStream publish waiting to be sent again (its table deadline: when)
    confirmed,  ///< a confirmed publish: the round trip after it, so the server has read it
  } kind;
  caf::response_promise promise;
  caf::message retry; ///< reply/js_*/confirmed: the request, sent again on the next connection
  steady_time started;
  uint64_t id = 0; ///< subscribed: the subscription's id
  steady_time deadline{};  ///< reply/js_*: when its caller's wait ends
  bool looked_up = false;  ///< js_*: a stream captures the subject, or that cannot be known
};

/// State of the actor that owns one natsConnection (one URL slot, one generation).
struct connection_actor_state {
  ~connection_actor_state();

  std::string key; ///< the URL as configured; may hold credentials, so it is never logged
  std::string url; ///< redacted
  uint64_t generation = 0;
  connection_role role = connection_role::shared;
  caf::actor supervisor;
  std::shared_ptr<const settings> cfg;
  std::unique_ptr<detail::callback_owner> callbacks;
  std::shared_ptr<detail::connection_core> core;
  jetstream_handle js; ///< the shared connection's JetStream context, made when it connected
  std::string last_async_error;
  /// Since the last (re)connect, nats.c reported that the server refused the credentials.
  bool auth_refused = false;
  bool connected = false; ///< as nats.c's callbacks last said: no nats.c lock needed to know
  uint64_t disconnects_told = 0; ///< nats.c's disconnect count when a change was last told
  bool failed = false;    ///< nats.c closed the connection for good; requests go back
  std::string js_problem; ///< why JetStream is unavailable, as the check at connect found
  /// From a disconnect until the supervisor's pub_resume: publishes go back to the supervisor,
  /// which holds them (nats.c's reconnect buffer dies with the connection if nats.c gives up).
  bool holding = false;

  // The message path: requests share one reply subscription ("<inbox>.<token>"), so no request
  // ever blocks this actor and any number (up to max_in_flight) can be in flight.
  std::string inbox;
  natsSubscription* replies = nullptr;
  /// Replies that the reply subscription's callback answers itself (made with `replies`).
  std::shared_ptr<reply_route> route;
  request_table<pending_request> pending{1};
  /// Adaptive flushing is paused until then, after a flush found no PONG (a hung server).
  steady_time flush_paused_until;
  /// Subscriptions of the message path, by the supervisor's id.
  std::unordered_map<uint64_t, natsSubscription*> subscriptions;
  /// Their pending limits and slow-consumer counts (nats/message_io.hpp), by the same id.
  std::unordered_map<uint64_t, std::shared_ptr<detail::subscription_flow>> flows;

  // While nats.c reconnects this actor calls nothing of nats.c (actors/link_gate.hpp).
  bool running = false; ///< connected once: the flag of `callbacks` is what to go by
  /// Requests tracked (their deadlines run) but not sent yet: sent once nats.c reconnected.
  std::vector<std::pair<uint64_t, outgoing>> held;
  /// Unsubscribed while nats.c reconnected: unsubscribed in nats.c once it is back.
  std::vector<natsSubscription*> unsubscribe_later;
  traffic last_stats; ///< answers `stats` while nats.c may hold the connection's lock
  /// Its part of the URL's credit: every publish it takes from its mailbox is refunded there.
  std::shared_ptr<publish_ledger> ledger;

  static inline const char* name = "natsvisor.connection";
};

using connection_actor_type = caf::stateful_actor<connection_actor_state>;

/// Owns the nats.c connection to `key` (one server or a comma-separated cluster list). It must
/// be spawned `detached`: connecting and closing (which joins nats.c's threads) block, and they
/// must never block a scheduler thread. Only this actor calls nats.c on its connection (handle
/// holders aside).
///
/// To `supervisor`: (conn_up, generation, connection_handle, jetstream_handle, js_problem) once
/// connected (the shared connection after a non-blocking JetStream check); (conn_evt,
/// generation, state, detail) when nats.c loses or regains the server; (stats, generation,
/// traffic) at the end of the generation; (conn_down, generation, error) when nats.c
/// closed the connection for good or the first connect failed; (lame_duck, generation) when its
/// server entered lame duck mode. From then on it serves nothing:
/// each message-path request still in flight or arriving is handed back to the supervisor as
/// (bounce, key, request), with the requester's promise, to be parked for the next
/// connection, until the supervisor sends (stop_conn, error).
///
/// From nats.c's disconnect until the supervisor's (pub_resume) -> unit, every publish is handed
/// back as (bounce, key, publish), to be held by the supervisor; the answer to pub_resume
/// follows everything handed back before it.
///
/// Answers (stats) -> traffic in every state (the last counters read while nats.c (re)connects).
/// Serves, while connected: health -> health_result (a non-blocking round trip);
/// (pub, outgoing), (pub, vector<outgoing>), (pub, packed_batch); (req, outgoing,
/// caller_deadline) -> nats_message; (pub_conf, outgoing, timeout) -> unit once the server has
/// read it; (js_pub, outgoing, caller_deadline) -> js_ack; (sub, id, subject, queue, subscriber) ->
/// id once the server has the subscription; (unsub, id); (stop_conn, error): answers everything in
/// flight with the error, closes the connection, quits; (retire): replaced by the next
/// generation, hands what is in flight back to the supervisor (as a bounce), closes, quits.
/// While nats.c reconnects (its callbacks'
/// flag, actors/link_gate.hpp) it calls nothing of nats.c: requests wait here until nats.c is
/// back or their deadline, publishes are handed back, health answers unhealthy at once,
/// subscriptions wait.
///
/// `slot` only names the connection at the server (see nats/options.hpp's connection_name).
/// `ledger`: where it refunds the publishes it takes (base/publish_credit.hpp).
caf::behavior connection_actor(connection_actor_type* self, std::string key, uint64_t generation,
                               connection_role role, uint32_t slot, caf::actor supervisor,
                               std::shared_ptr<const settings> cfg,
                               std::shared_ptr<publish_ledger> ledger);

} // namespace natsvisor
