#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "config/settings.hpp"

namespace natsvisor {

/// Applies the configuration to fresh nats.c options for `servers` (the parsed URL list) with
/// the connection name `name`. Returns the first failing status.
natsStatus configure_options(natsOptions* opts, const std::vector<std::string>& servers,
                             const settings& cfg, const std::string& name);

/// The name a connection shows at the server (nats-server's /connz): "<app_name>/shared/<gen>"
/// for a URL's shared connection (slot 0), "<app_name>/pool-<slot>/<gen>" for lease-pool slots.
std::string connection_name(const std::string& app_name, uint32_t slot, uint64_t generation);

/// Makes nats.c deliver the messages of every subscription of a connection made with `opts` on
/// a shared pool of threads instead of one thread per subscription (once per process).
natsStatus use_shared_delivery(natsOptions* opts);

} // namespace natsvisor
