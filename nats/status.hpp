#pragma once

#include <string>

#include <nats/nats.h>

#include "caf/error.hpp"

#include "messages/errors.hpp"

namespace natsvisor {

/// Builds the error for a failed nats.c call: the code is derived from the status (timeouts,
/// closed connections, bad subjects, ... map to their own codes; `fallback` otherwise) and
/// the detail is nats.c's status text plus its last error text when it says more.
caf::error from_status(natsStatus s, errc fallback, const std::string& url,
                       const std::string& what = {});

/// Why a connect attempt was refused, as natsvisor sees it.
struct connect_refusal {
  /// auth_failed or tls_failed (permanent: the same settings meet the same refusal), or
  /// connect_failed (transient: no server answered, or it answered something unexpected).
  errc code = errc::connect_failed;
  std::string detail; ///< the server's or nats.c's reason; never a credential
};

/// Pure: sorts a refused first connect by nats.c's status and error text (nats_GetLastError:
/// "(conn.c:1905): Authorization Violation", the SSL verify error, ...). `tls` tells whether the
/// connection used TLS: a server that requires a client certificate drops the connection after
/// the handshake, which nats.c reports only as an empty protocol line.
connect_refusal classify_connect_failure(natsStatus s, const std::string& text, bool tls);

} // namespace natsvisor
