#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <nats/nats.h>

#include "caf/response_promise.hpp"

#include "caf/stateful_actor.hpp"

#include "config/settings.hpp"
#include "nats/handles.hpp"

namespace natsvisor {

/// State of the actor that owns one natsConnection (one URL, one generation).
struct connection_actor_state {
  ~connection_actor_state();

  std::string key; ///< the URL as configured; may hold credentials, so it is never logged
  std::string url; ///< redacted
  uint64_t generation = 0;
  caf::actor supervisor;
  std::shared_ptr<const settings> cfg;
  std::shared_ptr<detail::connection_core> core;
  std::string last_async_error;

  // The message path: requests share one reply subscription ("<inbox>.<token>"), so no
  // request ever blocks this actor and any number can be in flight.
  struct pending_request {
    caf::response_promise promise;
    bool jetstream = false; ///< the reply is a JetStream acknowledgement
    std::chrono::steady_clock::time_point deadline;
  };
  std::string inbox;
  natsSubscription* replies = nullptr;
  uint64_t next_token = 0;
  std::unordered_map<uint64_t, pending_request> pending;
  bool sweeping = false; ///< a deadline sweep is scheduled
  /// Adaptive flushing is paused until then, after a flush found no PONG (a hung server).
  std::chrono::steady_clock::time_point flush_paused_until;
  /// Subscriptions of the message path, by the supervisor's id.
  std::unordered_map<uint64_t, natsSubscription*> subscriptions;

  static inline const char* name = "natsvisor.connection";
};

using connection_actor_type = caf::stateful_actor<connection_actor_state>;

/// Owns the nats.c connection to `key` (one server or a comma-separated cluster list). It must
/// be spawned `detached`: connecting, closing (which joins nats.c's threads) and health round
/// trips block, and they must never block a scheduler thread.
///
/// Reports to `supervisor`: (conn_up, generation, connection_handle, jetstream_handle,
/// jetstream_problem) once connected, and (conn_evt, generation, state, detail) when nats.c
/// loses or regains the server. Lets nats.c reconnect inside the connection; exits with
/// errc::connection_closed when nats.c closes it for good, errc::connect_failed when the first
/// connect fails definitively. Answers `health` with a real round trip, and serves the message
/// path once connected: (pub, outgoing) and (pub, vector<outgoing>) -> unit; (req, outgoing,
/// timeout) -> nats_message; (js_pub, outgoing, timeout) -> js_ack; (sub, id, subject, queue,
/// subscriber) -> id once the server has the subscription; (unsub, id).
caf::behavior connection_actor(connection_actor_type* self, std::string key, uint64_t generation,
                               caf::actor supervisor, std::shared_ptr<const settings> cfg);

} // namespace natsvisor
