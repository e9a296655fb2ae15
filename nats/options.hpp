#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "caf/error.hpp"

#include "config/settings.hpp"

namespace natsvisor {

/// Applies the configuration to fresh nats.c options for `servers` (the parsed URL list) with
/// the connection name `name`. Returns the first failing status.
natsStatus configure_options(natsOptions* opts, const std::vector<std::string>& servers,
                             const settings& cfg, const std::string& name);

/// Pure: TLS is required when `cfg.tls` is set or any server of the list is "tls://..." (nats.c
/// alone ignores the scheme and would send credentials in the clear to a plaintext server).
bool requires_tls(const std::vector<std::string>& servers, const settings& cfg);

/// Whether a connection made with `cfg` may use TLS: required, or a CA or client certificate
/// configured (nats.c also switches to TLS by itself when the server requires it).
bool may_use_tls(const std::vector<std::string>& servers, const settings& cfg);

/// The credential files (creds_file, nkey_seed_file) that cannot be read, as an
/// errc::invalid_config error naming the key, the path and the system's reason; none if all can.
/// nats.c reads them only while connecting and would report a missing one as a failed attempt
/// like any other.
caf::error check_credential_files(const settings& cfg, const std::string& url);

/// The name a connection shows at the server (nats-server's /connz): "<app_name>/shared/<gen>"
/// for a URL's shared connection (slot 0), "<app_name>/pool-<slot>/<gen>" for lease-pool slots.
std::string connection_name(const std::string& app_name, uint32_t slot, uint64_t generation);

/// Makes nats.c deliver the messages of every subscription of a connection made with `opts` on
/// its shared pool of threads (at least `threads` of them, process-wide) instead of one thread
/// per subscription.
natsStatus use_shared_delivery(natsOptions* opts, int threads);

} // namespace natsvisor
