#include "nats/status.hpp"

namespace natsvisor {

caf::error from_status(natsStatus s, errc fallback, const std::string& url,
                       const std::string& what) {
  // The one place where nats.c statuses become natsvisor codes.
  errc code = fallback;
  switch (s) {
    case NATS_TIMEOUT: code = errc::timeout; break;
    case NATS_CONNECTION_CLOSED: code = errc::connection_closed; break;
    case NATS_INVALID_SUBJECT: code = errc::invalid_subject; break;
    case NATS_MAX_PAYLOAD: code = errc::payload_too_large; break;
    case NATS_NO_RESPONDERS: code = errc::no_responders; break;
    default: break;
  }
  std::string detail = what.empty() ? std::string{} : what + ": ";
  detail += natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  // nats_GetLastError is per thread: it describes the call that just failed on this thread.
  if (const char* text = nats_GetLastError(&last);
      text != nullptr && *text != '\0' && detail.find(text) == std::string::npos) {
    detail += " (";
    detail += text;
    detail += ")";
  }
  return make_error(code, std::move(detail), url);
}

} // namespace natsvisor
