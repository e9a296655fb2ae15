#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "caf/meta/type_name.hpp"
#include "caf/timespan.hpp"

namespace natsvisor {

/// The life of one URL's connection as the supervisor sees it.
enum class connection_state : uint8_t {
  connecting,    ///< a connection actor exists and waits for its first connect
  connected,     ///< usable
  reconnecting,  ///< nats.c lost the server and reconnects inside the same connection
  restarting,    ///< the connection actor failed; the supervisor waits to start a fresh one
  gave_up,       ///< the supervisor stopped restarting; requests fail with gave_up until reset
  closed,        ///< closed on request (close_connection or shutdown)
};

const char* to_string(connection_state x);

/// Sent to watchers whenever a URL's connection changes state.
struct state_changed {
  std::string url;  ///< redacted: never carries a user, password or token
  connection_state state = connection_state::connecting;
  uint64_t generation = 0;  ///< which connection actor (1 for the first, +1 per restart)
  std::string detail;       ///< why (nats.c's text, the give-up reason, ...), may be empty
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_changed& x) {
  return f(caf::meta::type_name("state_changed"), x.url, x.state, x.generation, x.detail);
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
  return f(caf::meta::type_name("health_result"), x.url, x.healthy, x.rtt, x.generation,
           x.detail);
}

/// One URL's line in status().
struct url_status {
  std::string url;
  connection_state state = connection_state::connecting;
  uint64_t generation = 0;
  uint64_t restarts = 0;    ///< connection actors started after the first
  uint64_t reconnects = 0;  ///< nats.c's own reconnects inside the current connection
  uint64_t in_msgs = 0;
  uint64_t out_msgs = 0;
  uint64_t in_bytes = 0;
  uint64_t out_bytes = 0;
  uint64_t parked = 0;         ///< requests waiting for the connection to come up
  uint64_t active_scopes = 0;  ///< connection/JetStream scopes not yet released
  std::string last_error;      ///< redacted
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, url_status& x) {
  return f(caf::meta::type_name("url_status"), x.url, x.state, x.generation, x.restarts,
           x.reconnects, x.in_msgs, x.out_msgs, x.in_bytes, x.out_bytes, x.parked,
           x.active_scopes, x.last_error);
}

using status_report = std::vector<url_status>;

} // namespace natsvisor
