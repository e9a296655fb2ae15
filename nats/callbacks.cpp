#include "nats/callbacks.hpp"

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"

#include "base/logging.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor::detail {

namespace {

struct owner_table {
  std::mutex mtx;
  std::unordered_map<uintptr_t, caf::weak_actor_ptr> owners;
  std::atomic<uintptr_t> next{0};
};

owner_table& table() {
  static owner_table* instance = new owner_table; // never destroyed: callbacks may run at exit
  return *instance;
}

caf::actor owner_of(void* closure) {
  auto& t = table();
  std::lock_guard<std::mutex> guard{t.mtx};
  auto it = t.owners.find(reinterpret_cast<uintptr_t>(closure));
  return it == t.owners.end() ? caf::actor{} : caf::actor_cast<caf::actor>(it->second);
}

template <class... Ts>
void notify(const char* where, void* closure, Ts&&... xs) noexcept {
  at_c_boundary(where, [&] {
    if (auto hdl = owner_of(closure))
      caf::anon_send(hdl, std::forward<Ts>(xs)...);
  });
}

void on_disconnected(natsConnection*, void* closure) {
  notify("disconnected callback", closure, disconnected_atom_v);
}

void on_reconnected(natsConnection*, void* closure) {
  notify("reconnected callback", closure, reconnected_atom_v);
}

void on_lame_duck(natsConnection*, void* closure) {
  notify("lame duck callback", closure, lame_duck_atom_v);
}

void on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  // Only the status: the subscription pointer may be gone when the actor reads it.
  notify("error callback", closure, async_error_atom_v, static_cast<int32_t>(err));
}

} // namespace

void log_boundary_exception(const char* where, const char* what) noexcept {
  try {
    log().error("exception in nats.c {} (ignored): {}", where, what);
  } catch (...) {
    // nop: nothing more can be done at a C boundary
  }
}

callback_owner::callback_owner(caf::weak_actor_ptr owner) {
  auto& t = table();
  id_ = ++t.next;
  std::lock_guard<std::mutex> guard{t.mtx};
  t.owners.emplace(id_, std::move(owner));
}

callback_owner::~callback_owner() {
  auto& t = table();
  std::lock_guard<std::mutex> guard{t.mtx};
  t.owners.erase(id_);
}

void* callback_owner::closure() const noexcept {
  return reinterpret_cast<void*>(id_);
}

void on_connected(natsConnection*, void* closure) {
  notify("connected callback", closure, connected_atom_v);
}

void on_closed(natsConnection*, void* closure) {
  notify("closed callback", closure, closed_atom_v);
}

natsStatus install_callbacks(natsOptions* opts, const callback_owner& owner) {
  auto* closure = owner.closure();
  natsStatus s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, closure);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(opts, on_disconnected, closure);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectedCB(opts, on_reconnected, closure);
  if (s == NATS_OK)
    s = natsOptions_SetClosedCB(opts, on_closed, closure);
  if (s == NATS_OK)
    s = natsOptions_SetErrorHandler(opts, on_error, closure);
  if (s == NATS_OK)
    s = natsOptions_SetLameDuckModeCB(opts, on_lame_duck, closure);
  return s;
}

} // namespace natsvisor::detail
