#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace natsvisor {

/// natsvisor's logger ("natsvisor"): lifecycle at info, retries at warn, give-up at error.
/// Messages carry redacted URLs only. Created on first use; an application may register its
/// own logger under that name first to redirect it.
spdlog::logger& log();

/// Sets the level from a configuration string (trace, debug, info, warn, error, off).
void set_log_level(const std::string& level);

} // namespace natsvisor
