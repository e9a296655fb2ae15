#include "nats/callbacks.hpp"

#include <memory>
#include <string>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"

#include "nats/type_ids.hpp"

namespace natsvisor::detail {

namespace {

template <class... Ts>
void notify(void* closure, Ts&&... xs) {
  auto* bridge = static_cast<callback_bridge*>(closure);
  if (auto hdl = caf::actor_cast<caf::actor>(bridge->owner))
    caf::anon_send(hdl, std::forward<Ts>(xs)...);
}

void on_connected(natsConnection*, void* closure) {
  notify(closure, connected_atom_v);
}

void on_disconnected(natsConnection*, void* closure) {
  notify(closure, disconnected_atom_v);
}

void on_reconnected(natsConnection*, void* closure) {
  notify(closure, reconnected_atom_v);
}

void on_lame_duck(natsConnection*, void* closure) {
  notify(closure, lame_duck_atom_v);
}

void on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  // Only the status text travels: the subscription pointer may be gone when the actor reads it.
  notify(closure, async_error_atom_v, std::string{natsStatus_GetText(err)});
}

void on_closed(natsConnection*, void* closure) {
  std::unique_ptr<callback_bridge> bridge{static_cast<callback_bridge*>(closure)};
  if (auto hdl = caf::actor_cast<caf::actor>(bridge->owner))
    caf::anon_send(hdl, closed_atom_v);
}

} // namespace

natsStatus install_callbacks(natsOptions* opts, callback_bridge* bridge) {
  natsStatus s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, bridge);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(opts, on_disconnected, bridge);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(opts, on_reconnected, bridge);
  if (s == NATS_OK)
    s = natsOptions_SetClosedCB(opts, on_closed, bridge);
  if (s == NATS_OK)
    s = natsOptions_SetErrorHandler(opts, on_error, bridge);
  if (s == NATS_OK)
    s = natsOptions_SetLameDuckModeCB(opts, on_lame_duck, bridge);
  return s;
}

} // namespace natsvisor::detail
