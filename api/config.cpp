#include "api/config.hpp"

#include <chrono>


#include "nats/type_ids.hpp"

namespace natsvisor {

void set_scheduler_defaults(caf::actor_system_config& cfg) {
  auto set_default = [&cfg](caf::string_view key, auto value) {
    if (caf::get_if(&cfg.content, key) == nullptr)
      cfg.set(key, value);
  };
  set_default("work-stealing.moderate-poll-attempts", size_t{0});
  // Without the polling phase, idle workers sleep on a condition variable that only an enqueue
  // from outside the scheduler signals; work one worker enqueues for itself is stolen by the
  // others only when their sleep times out (CAF: 10 ms). Behind a URL flooded with requests a
  // healthy URL's request then waited up to that long (isolation bench, p99 with 100k parked:
  // 35 ms; with 1 ms: 1.5 ms get_connection, 4 ms request; with CAF's polling: 2.2 / 3.1 ms). The
  // price: an idle worker wakes 1,000 times a second to look for work to steal.
  set_default("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::milliseconds(1)});
  // The number of workers stays CAF's (at least 4). One per core gave the 100 concurrent
  // requesters of the benchmark ~15% more, but with 2 workers a URL flooded with requests keeps
  // both busy and a healthy URL's request waits behind it: median 11 ms instead of 2 ms in the
  // [isolation] test. Isolation wins.
}

void add_to(caf::actor_system_config& cfg) {
  declare_keys(cfg);
  set_scheduler_defaults(cfg);
  cfg.add_message_types<caf::id_block::natsvisor>();
  // How CAF prints natsvisor's errors: code, detail and the (redacted) URL.
  cfg.add_error_category(error_category, [](uint8_t code, caf::atom_value,
                                            const caf::message& ctx) {
    std::string out = to_string(static_cast<errc>(code));
    if (ctx.size() >= 1 && ctx.match_element<std::string>(0) && !ctx.get_as<std::string>(0).empty())
      out += ": " + ctx.get_as<std::string>(0);
    if (ctx.size() >= 2 && ctx.match_element<std::string>(1) && !ctx.get_as<std::string>(1).empty())
      out += " [" + ctx.get_as<std::string>(1) + "]";
    return out;
  });
}

config::config() {
  add_to(*this);
}

} // namespace natsvisor
