#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "caf/meta/type_name.hpp"
#include "caf/timespan.hpp"
#include "caf/timestamp.hpp"

namespace natsvisor {

/// The life of one URL's connection as the supervisor sees it.
enum class connection_state : uint8_t {
  connecting,   ///< a connection actor exists and waits for its first connect
  connected,    ///< usable
  reconnecting, ///< nats.c lost the server and reconnects inside the same connection
  restarting,   ///< the connection actor failed; the supervisor waits to start a fresh one
  gave_up,      ///< the supervisor stopped restarting; requests fail with gave_up until reset
  closing,      ///< close requested: the connection actor is stopping
  closed,       ///< not started yet, or closed on request (close_connection or shutdown)
};

const char* to_string(connection_state x);

/// Sent to watchers whenever a URL's connection changes state.
struct state_changed {
  std::string url; ///< redacted: never carries a user, password or token
  connection_state state = connection_state::connecting;
  uint64_t generation = 0; ///< which connection actor (1 for the first, +1 per restart)
  std::string detail;      ///< why (nats.c's text, the give-up reason, ...), may be empty
  uint32_t slot = 0;       ///< 0: the URL's shared connection; 1..: a lease pool slot
  caf::timestamp at;       ///< when the supervisor saw the change (not when a watcher reads it)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_changed& x) {
  return f(caf::meta::type_name("state_changed"), x.url, x.state, x.generation, x.detail, x.slot,
           x.at);
}

/// The answer to a health check: a real round trip to the server, or why there was none.
struct health_result {
  std::string url;
  bool healthy = false;
  caf::timespan rtt{0};
  uint64_t generation = 0;
  std::string detail;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, health_result& x) {
  return f(caf::meta::type_name("health_result"), x.url, x.healthy, x.rtt, x.generation, x.detail);
}

/// Lease pool counters of one URL.
struct pool_status {
  uint64_t size = 0;     ///< pooled connections that exist now
  uint64_t active = 0;   ///< leased
  uint64_t idle = 0;     ///< connected and free
  uint64_t waiting = 0;  ///< lease requests queued now
  uint64_t waits = 0;    ///< lease requests that had to queue, ever
  uint64_t timeouts = 0; ///< lease requests that ended in pool_exhausted
  uint64_t created = 0;  ///< pooled connection actors started (restarts included)
  uint64_t closed = 0;   ///< pooled connection actors that ended
  uint64_t leaks = 0;    ///< leases reported as held past leak_threshold
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_status& x) {
  return f(caf::meta::type_name("pool_status"), x.size, x.active, x.idle, x.waiting, x.waits,
           x.timeouts, x.created, x.closed, x.leaks);
}

/// Traffic counters of one connection, as nats.c counts them.
struct traffic {
  uint64_t in_msgs = 0;
  uint64_t in_bytes = 0;
  uint64_t out_msgs = 0;
  uint64_t out_bytes = 0;
  uint64_t reconnects = 0;

  traffic& operator+=(const traffic& x) {
    in_msgs += x.in_msgs;
    in_bytes += x.in_bytes;
    out_msgs += x.out_msgs;
    out_bytes += x.out_bytes;
    reconnects += x.reconnects;
    return *this;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, traffic& x) {
  return f(caf::meta::type_name("traffic"), x.in_msgs, x.in_bytes, x.out_msgs, x.out_bytes,
           x.reconnects);
}

/// Why natsvisor could not keep a message-path publish (errc::dropped's detail names it too).
enum class drop_reason : uint8_t {
  over_bound, ///< the URL's publish buffer was full (publish_buffer_messages / _bytes)
  gave_up,    ///< the supervisor gave up on the URL
  closed,     ///< the URL was closed on request
  stopped,    ///< the connection service stopped
  timeout,    ///< an awaited publish not written within request_timeout (fire and forget: never)
  overloaded, ///< the URL's credit was used up (publish_credit_*): its connection lags behind
};

constexpr size_t drop_reason_count = 6;

const char* to_string(drop_reason x);

/// Sent to watchers when fire-and-forget publishes are dropped (a sender awaiting an answer gets
/// errc::dropped instead): nothing is dropped silently.
struct publishes_dropped {
  std::string url; ///< redacted
  drop_reason reason = drop_reason::over_bound;
  uint64_t messages = 0; ///< dropped now
  uint64_t bytes = 0;
  uint64_t total = 0; ///< messages of this URL dropped for this reason so far (both kinds)
  caf::timestamp at;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, publishes_dropped& x) {
  return f(caf::meta::type_name("publishes_dropped"), x.url, x.reason, x.messages, x.bytes,
           x.total, x.at);
}

/// The message-path publishes of one URL: held while it has no connection, written once it has.
struct publish_status {
  uint64_t buffered = 0;       ///< messages held now
  uint64_t buffered_bytes = 0; ///< their bytes (subject, payload, headers)
  uint64_t replayed = 0;       ///< messages written from the buffer once a connection was back
  uint64_t dropped[drop_reason_count] = {}; ///< messages dropped, by drop_reason

  uint64_t dropped_total() const noexcept {
    uint64_t n = 0;
    for (auto x : dropped)
      n += x;
    return n;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, publish_status& x) {
  static_assert(drop_reason_count == 6, "inspect every count of publish_status::dropped");
  return f(caf::meta::type_name("publish_status"), x.buffered, x.buffered_bytes, x.replayed,
           x.dropped[0], x.dropped[1], x.dropped[2], x.dropped[3], x.dropped[4], x.dropped[5]);
}

/// One URL's line in status().
struct url_status {
  std::string url;
  connection_state state = connection_state::connecting;
  uint64_t generation = 0;
  uint64_t restarts = 0; ///< connection actors started after the first
  /// nats.c's own reconnects, summed over all generations. nats.c also counts the retries of
  /// a first connect made while the server was down.
  uint64_t reconnects = 0;
  // Traffic of the URL's shared connection, summed over all generations.
  uint64_t in_msgs = 0;
  uint64_t out_msgs = 0;
  uint64_t in_bytes = 0;
  uint64_t out_bytes = 0;
  uint64_t parked = 0;        ///< requests waiting for the connection to come up
  uint64_t active_scopes = 0; ///< connection/JetStream scopes not yet released
  uint64_t subscriptions = 0; ///< message-path subscriptions (kept across restarts)
  std::string last_error;     ///< of the shared connection; kept after recovery
  pool_status pool;           ///< the lease pool of this URL
  publish_status publishes;   ///< the message path's publish buffer
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, url_status& x) {
  return f(caf::meta::type_name("url_status"), x.url, x.state, x.generation, x.restarts,
           x.reconnects, x.in_msgs, x.out_msgs, x.in_bytes, x.out_bytes, x.parked, x.active_scopes,
           x.subscriptions, x.last_error, x.pool, x.publishes);
}

using status_report = std::vector<url_status>;

/// Message headers, in order; a key may repeat.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// A message to publish through the message path.
struct outgoing {
  std::string subject;
  std::string payload; ///< bytes
  header_list headers;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outgoing& x) {
  return f(caf::meta::type_name("outgoing"), x.subject, x.payload, x.headers);
}

/// The cheapest batch form: many payloads for one subject, back to back in one buffer, so a
/// batch costs two allocations however many messages it holds, and its subject is checked once.
struct packed_batch {
  std::string subject;
  std::string data;            ///< the payloads, back to back
  std::vector<uint32_t> sizes; ///< one per message

  void add(std::string_view payload) {
    data.append(payload.data(), payload.size());
    sizes.push_back(static_cast<uint32_t>(payload.size()));
  }
  size_t size() const noexcept { return sizes.size(); }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, packed_batch& x) {
  return f(caf::meta::type_name("packed_batch"), x.subject, x.data, x.sizes);
}

/// A message received through the message path: what a subscriber actor gets in its mailbox,
/// and the reply to a request.
struct nats_message {
  std::string subject;
  std::string reply; ///< empty when the sender expects no reply
  header_list headers;
  std::string payload;       ///< bytes
  uint64_t subscription = 0; ///< the id subscribe() returned; 0 for replies
  /// Not sent anywhere (local actors only): counts the message against its subscription's
  /// pending limits until its last copy is gone (subscription_pending_messages / _bytes).
  std::shared_ptr<const void> credit;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, nats_message& x) {
  return f(caf::meta::type_name("nats_message"), x.subject, x.reply, x.headers, x.payload,
           x.subscription);
}

/// Sent to watchers when a message-path subscription's subscriber does not keep up: its
/// pending limits (subscription_pending_messages / _bytes) are full and messages are dropped.
/// Once per episode, not per dropped message; an episode ends when the subscriber has caught up
/// to half the limits. The counts are of the subscription on its current connection.
struct slow_consumer {
  std::string url; ///< redacted
  uint64_t subscription = 0;
  std::string subject;
  uint64_t dropped = 0;  ///< messages dropped so far, this episode's first included
  uint64_t episodes = 0; ///< episodes so far, this one included
  caf::timestamp at;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, slow_consumer& x) {
  return f(caf::meta::type_name("slow_consumer"), x.url, x.subscription, x.subject, x.dropped,
           x.episodes, x.at);
}

/// A JetStream acknowledgement: the message is stored.
struct js_ack {
  std::string stream;
  uint64_t sequence = 0;
  bool duplicate = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, js_ack& x) {
  return f(caf::meta::type_name("js_ack"), x.stream, x.sequence, x.duplicate);
}

/// Sent to watchers when a lease is held past leak_threshold.
struct lease_leaked {
  std::string url; ///< redacted
  uint64_t lease = 0;
  std::string holder; ///< the holder actor's id and name
  caf::timespan held{0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lease_leaked& x) {
  return f(caf::meta::type_name("lease_leaked"), x.url, x.lease, x.holder, x.held);
}

} // namespace natsvisor
