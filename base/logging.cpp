#include "base/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace natsvisor {

spdlog::logger& log() {
  // Looked up once; spdlog's registry is thread-safe, so the first use from any thread works.
  static std::shared_ptr<spdlog::logger> instance = [] {
    if (auto existing = spdlog::get("natsvisor"))
      return existing;
    auto created = spdlog::stderr_color_mt("natsvisor");
    created->set_pattern("%H:%M:%S.%e %^%-5l%$ [natsvisor] %v");
    return created;
  }();
  return *instance;
}

void set_log_level(const std::string& level) {
  log().set_level(spdlog::level::from_str(level));
}

} // namespace natsvisor
