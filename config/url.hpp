#pragma once

#include <string>
#include <vector>

#include "caf/expected.hpp"

namespace natsvisor {

/// The URL with every user, password and token replaced by "***", for logs and errors.
/// Works on malformed input too, so an error about a bad URL never leaks its secret.
std::string redact(const std::string& url);

/// Splits a URL (one server, or a comma-separated server list for a cluster) into its servers
/// and validates each: scheme nats:// or tls://, optional user[:password]@, a host, an optional
/// port in 1..65535, nothing after. Fails with errc::invalid_url naming the redacted URL.
caf::expected<std::vector<std::string>> parse_servers(const std::string& url);

} // namespace natsvisor
