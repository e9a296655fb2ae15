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

namespace {

// nats_GetLastError prefixes the place it was set ("(conn.c:1905): "); the reason follows.
std::string without_location(const std::string& text) {
  if (!text.empty() && text.front() == '(')
    if (auto end = text.find("): "); end != std::string::npos)
      return text.substr(end + 3);
  return text;
}

} // namespace

connect_refusal classify_connect_failure(natsStatus s, const std::string& text, bool tls) {
  auto reason = without_location(text);
  if (reason.empty())
    reason = natsStatus_GetText(s);
  switch (s) {
    case NATS_CONNECTION_AUTH_FAILED:
      return {errc::auth_failed, "the server rejected the credentials: " + reason};
    case NATS_SECURE_CONNECTION_WANTED:
      return {errc::tls_failed, "TLS is required (tls:// or tls = true) but the server does not "
                                "offer it; nothing was sent: "
                                  + reason};
    case NATS_SECURE_CONNECTION_REQUIRED:
      return {errc::tls_failed, "the server requires TLS: " + reason};
    case NATS_SSL_ERROR: return {errc::tls_failed, "TLS handshake failed: " + reason};
    case NATS_PROTOCOL_ERROR:
      // Right after a TLS handshake, a server that wants a client certificate it trusts closes
      // the connection: nats.c then reads an empty line where the PONG belongs.
      if (tls && reason.find("got ''") != std::string::npos)
        return {errc::tls_failed, "the server closed the connection after the TLS handshake: it "
                                  "requires a client certificate it trusts (tls_cert_file, "
                                  "tls_key_file): "
                                    + reason};
      break;
    default: break;
  }
  return {errc::connect_failed, reason};
}

} // namespace natsvisor
