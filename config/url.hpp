#pragma once

#include <string>
#include <vector>

#include "caf/expected.hpp"

#include "config/redact.hpp"

namespace natsvisor {

/// Splits a URL (one server, or a comma-separated server list for a cluster) into its servers
/// and validates each: scheme nats:// or tls://, optional user[:password]@, a host, an optional
/// port in 1..65535, nothing after. Fails with errc::invalid_url naming the redacted URL; the
/// detail never quotes the URL's text (a scheme, host or port might be part of a credential).
caf::expected<std::vector<std::string>> parse_servers(const std::string& url);

} // namespace natsvisor
