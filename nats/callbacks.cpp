#include "nats/callbacks.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"

#include "base/logging.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor::detail {

namespace {

struct owner_entry {
  caf::weak_actor_ptr actor;
  std::shared_ptr<callback_owner::link_state> link;
};

struct owner_table {
  std::mutex mtx;
  std::unordered_map<uintptr_t, owner_entry> owners;
  std::atomic<uintptr_t> next{0};
};

owner_table& table() {
  static owner_table* instance = new owner_table; // never destroyed: callbacks may run at exit
  return *instance;
}

// The owner's entry, looked up under the mutex; nothing once the owner is gone.
std::optional<owner_entry> entry_of(void* closure) {
  auto& t = table();
  std::lock_guard<std::mutex> guard{t.mtx};
  auto it = t.owners.find(reinterpret_cast<uintptr_t>(closure));
  if (it == t.owners.end())
    return std::nullopt;
  return it->second;
}

// Sends the owner its message; with `reconnecting`, first sets the flag to it, so the owner
// stops (or resumes) calling nats.c before the message arrives.
template <class... Ts>
void notify(const char* where, void* closure, std::optional<bool> reconnecting,
            Ts&&... xs) noexcept {
  at_c_boundary(where, [&] {
    auto entry = entry_of(closure);
    if (!entry)
      return;
    if (reconnecting && *reconnecting)
      entry->link->disconnects.fetch_add(1, std::memory_order_acq_rel);
    if (reconnecting)
      entry->link->reconnecting.store(*reconnecting, std::memory_order_release);
    if (auto hdl = caf::actor_cast<caf::actor>(entry->actor))
      caf::anon_send(hdl, std::forward<Ts>(xs)...);
  });
}

void on_disconnected(natsConnection*, void* closure) {
  notify("disconnected callback", closure, true, disconnected_atom_v);
}

void on_reconnected(natsConnection*, void* closure) {
  notify("reconnected callback", closure, false, reconnected_atom_v);
}

void on_lame_duck(natsConnection*, void* closure) {
  notify("lame duck callback", closure, std::nullopt, lame_duck_atom_v);
}

void on_error(natsConnection*, natsSubscription* sub, natsStatus err, void* closure) {
  // The status and which subscription (0: none), as the pointer's value only: nats.c (3.4.1
  // retains the connection, not the subscription, when it queues this callback) does not hold
  // the subscription, so it may be freed already and is never read. Its address may even belong
  // to a newer subscription by now: the connection actor only takes it as a hint of which
  // subscription's drop count to read.
  notify("error callback", closure, std::nullopt, async_error_atom_v, static_cast<int32_t>(err),
         static_cast<uint64_t>(reinterpret_cast<uintptr_t>(sub)));
}

} // namespace

void log_boundary_exception(const char* where, const char* what) noexcept {
  try {
    log().error("exception in nats.c {} (ignored): {}", where, what);
  } catch (...) {
    // nop: nothing more can be done at a C boundary
  }
}

callback_owner::callback_owner(caf::weak_actor_ptr owner)
  : link_(std::make_shared<link_state>()) {
  auto& t = table();
  id_ = ++t.next;
  std::lock_guard<std::mutex> guard{t.mtx};
  t.owners.emplace(id_, owner_entry{std::move(owner), link_});
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
  notify("connected callback", closure, false, connected_atom_v);
}

void on_closed(natsConnection*, void* closure) {
  notify("closed callback", closure, std::nullopt, closed_atom_v);
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
