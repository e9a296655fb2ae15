#include "messages/types.hpp"

namespace natsvisor {

const char* to_string(connection_state x) {
  switch (x) {
    case connection_state::connecting: return "connecting";
    case connection_state::connected: return "connected";
    case connection_state::reconnecting: return "reconnecting";
    case connection_state::restarting: return "restarting";
    case connection_state::gave_up: return "gave_up";
    case connection_state::closing: return "closing";
    case connection_state::closed: return "closed";
  }
  return "unknown";
}

const char* to_string(drop_reason x) {
  switch (x) {
    case drop_reason::over_bound: return "over_bound";
    case drop_reason::gave_up: return "gave_up";
    case drop_reason::closed: return "closed";
    case drop_reason::stopped: return "stopped";
    case drop_reason::timeout: return "timeout";
    case drop_reason::overloaded: return "overloaded";
  }
  return "unknown";
}

} // namespace natsvisor
