#pragma once

#include <cstdint>
#include <string>

#include "caf/error.hpp"
#include "caf/make_message.hpp"

namespace natsvisor {

/// Every failure natsvisor reports, as codes of its own CAF error category `natsvisor`.
/// The error's context carries two strings: a detail (nats.c's status text where there is one)
/// and the URL with any user, password or token redacted.
enum class errc : uint8_t {
  none = 0,
  invalid_url,           ///< the URL (or one server of a list) cannot be parsed
  connect_failed,        ///< nats.c refused to create the connection
  timeout,               ///< a deadline passed before the request could be answered
  connection_closed,     ///< nats.c closed the connection for good, or it was closed on request
  gave_up,               ///< the supervisor stopped restarting this URL
  pool_exhausted,        ///< no pooled connection became free in time
  jetstream_unavailable, ///< the server has no JetStream (or it could not be reached)
  invalid_subject,       ///< a subject nats.c or the server rejects
  payload_too_large,     ///< above the server's max_payload
  unknown_service,       ///< the service manager knows no service of that name
  invalid_config,        ///< a configuration value is missing, malformed or out of range
  service_stopped,       ///< the service was shut down while the request was pending
  nats_error,            ///< any other nats.c failure (the detail names it)
  no_responders,         ///< a request reached no subscriber
  no_stream,             ///< a JetStream publish to a subject no stream captures
  jetstream_error,       ///< JetStream refused a publish (the detail has its error code)
  overloaded,            ///< a bound was reached (parked requests, waiters, subscriptions, ...)
  auth_failed,           ///< the server rejected the credentials (user/password, token, nkey, creds)
  tls_failed,            ///< TLS could not be established (required but off, handshake, certificate)
  unavailable,           ///< transient: e.g. a JetStream stream without a leader; retrying may work
  dropped,               ///< natsvisor could not keep a publish (buffer bound, give-up, shutdown)
};

/// The category atom of natsvisor's errors (at most 10 characters, as CAF 0.17 requires).
constexpr caf::atom_value error_category = caf::atom("natsvisor");

/// Short name of a code, e.g. "gave_up".
const char* to_string(errc x);

/// Builds a natsvisor error. `url` must already be redacted. Found by CAF through ADL, so
/// `caf::error e = errc::timeout;` and `e == errc::timeout` (compares code and category) work.
caf::error make_error(errc code, std::string detail = {}, std::string url = {});

/// The natsvisor code of an error, or errc::none for errors of other categories.
errc code_of(const caf::error& e);

/// The detail and URL strings of a natsvisor error (empty for other errors).
std::string detail_of(const caf::error& e);
std::string url_of(const caf::error& e);

/// One line for humans and logs: "natsvisor.gave_up: <detail> [<url>]"; works for any error.
/// Without the URL where the context names it already.
std::string describe(const caf::error& e, bool with_url = true);

} // namespace natsvisor
