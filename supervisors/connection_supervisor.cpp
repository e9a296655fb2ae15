// A URL supervisor actor: its state, its handler groups composed into one behavior.
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

namespace supervision {

void offer_retirement(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (st.router && !st.shutting_down && st.urls.empty() && st.subscriptions.size() == 0)
    self->send(st.router, forget_atom_v, key);
}

caf::message_handler from_router(self_ptr self) {
  return {
    // Answered with the generations the URL reached when nothing is left, and this actor ends;
    // with nothing when it got work since it offered (it stays). Messages the router sent before
    // this question were handled first, and it sends none after it until the answer.
    [self](retire_atom) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (!st.urls.empty() || st.subscriptions.size() > 0 || st.shutting_down) {
        rp.deliver(std::vector<uint64_t>{});
        return rp;
      }
      std::vector<uint64_t> reached{0, 0};
      for (auto& [key, g] : st.past_generations) // its one URL
        reached = {g.first, g.second};
      rp.deliver(std::move(reached));
      self->quit();
      return rp;
    },
  };
}

} // namespace supervision

caf::behavior url_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg,
                             url_start start) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.subscriptions
    = subscription_registry<caf::actor>{static_cast<size_t>(st.cfg->max_subscriptions)};
  st.router = std::move(start.router);
  st.next_id = start.first_id;
  if (start.credit)
    st.credits[start.key] = std::move(start.credit);
  if (start.generations != std::pair<uint64_t, uint64_t>{0, 0})
    st.past_generations[start.key] = start.generations; // entry_for counts on from them
  for (auto& w : start.watchers) {
    self->monitor(w);
    st.watchers.push_back(std::move(w));
  }
  detail::tolerate_strays(self, "connection supervisor");
  self->set_exit_handler([self](caf::exit_msg& msg) { supervision::shut_down(self, msg.reason); });
  self->set_down_handler([self](caf::down_msg& msg) {
    if (msg.source == self->state.router) // the router went: nobody can reach this URL any more
      supervision::shut_down(self, msg.reason ? msg.reason : caf::exit_reason::user_shutdown);
    else
      supervision::on_down(self, msg);
  });
  if (st.router)
    self->monitor(st.router);
  if (start.eager) {
    if (auto e = supervision::entry_for(self, start.key))
      supervision::ensure_shared(self, **e);
  } else {
    // Spawned for a message that may create nothing (a refused one): offered for retirement
    // once that message was handled, unless it created the URL's entry.
    self->send(self, forget_atom_v, start.key);
  }
  return supervision::handle_requests(self)
    .or_else(supervision::message_path(self))
    .or_else(supervision::from_children(self))
    .or_else(supervision::from_router(self));
}

} // namespace natsvisor
