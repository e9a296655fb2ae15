// The connection supervisor actor: its state, its handler groups composed into one behavior.
// What it does lives in supervision.cpp (acting on the pure cores) and supervision_handlers.cpp
// (the messages it answers); every decision lives in the cores themselves.

#include "supervisors/connection_supervisor.hpp"

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "config/url.hpp"
#include "nats/type_ids.hpp"
#include "supervisors/supervision.hpp"

namespace natsvisor {

url_entry::url_entry(std::string k, const settings& cfg, std::pair<uint64_t, uint64_t> generations)
  : key(std::move(k)),
    url(redact(key)),
    parked(static_cast<size_t>(cfg.max_parked)),
    pool(static_cast<size_t>(cfg.connection_pool_size), static_cast<size_t>(cfg.max_parked)),
    outbox(static_cast<uint64_t>(cfg.publish_buffer_messages),
           static_cast<uint64_t>(cfg.publish_buffer_bytes)) {
  slots.reserve(1 + static_cast<size_t>(cfg.connection_pool_size));
  for (int i = 0; i <= cfg.connection_pool_size; ++i)
    slots.emplace_back(cfg.policy, i == 0 ? generations.first : generations.second);
}

caf::behavior connection_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.subscriptions
    = subscription_registry<caf::actor>{static_cast<size_t>(st.cfg->max_subscriptions)};
  detail::tolerate_strays(self, "connection supervisor");
  self->set_exit_handler([self](caf::exit_msg& msg) { supervision::shut_down(self, msg.reason); });
  self->set_down_handler([self](caf::down_msg& msg) { supervision::on_down(self, msg); });
  for (auto& url : st.cfg->urls) {
    if (auto e = supervision::entry_for(self, url))
      supervision::ensure_shared(self, **e);
    else
      log().error("cannot supervise {}: {}", redact(url), describe(e.error()));
  }
  return supervision::handle_requests(self)
    .or_else(supervision::message_path(self))
    .or_else(supervision::from_children(self));
}

} // namespace natsvisor
