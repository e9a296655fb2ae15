#pragma once

#include "caf/actor_system_config.hpp"

#include "config/settings.hpp"

namespace natsvisor {

/// Declares natsvisor's keys (so `--help` lists them and the command line accepts them),
/// registers its message types and its error category. Call before parsing the config.
void add_to(caf::actor_system_config& cfg);

/// An actor_system_config with natsvisor already added.
class config : public caf::actor_system_config {
 public:
  config();
};

} // namespace natsvisor
