#pragma once

#include <nats/nats.h>

#include "caf/actor_control_block.hpp"
#include "caf/weak_intrusive_ptr.hpp"

namespace natsvisor::detail {

/// The closure of every nats.c connection callback. nats.c calls the callbacks on its own
/// thread, possibly after natsConnection_Destroy() returned, so the closure cannot live in
/// actor state: it is a heap object that only the closed callback frees. The closed callback
/// is the last one: nats.c's close joins its read, flush and reconnect threads (which post the
/// other callbacks) before it posts "closed" to the same FIFO callback thread. Drain and
/// asynchronous JetStream publishing, which post errors from other threads, are not used.
/// It holds a weak handle, so a callback never keeps the actor alive or touches its state: it
/// only sends a message, and sends nothing once the actor is gone.
struct callback_bridge {
  caf::weak_actor_ptr owner;
};

/// Installs the connected (retry-on-failed-connect), disconnected, reconnected, closed, error
/// and lame-duck callbacks with `bridge` as their closure. On success the closed callback owns
/// `bridge` from the moment a connection exists.
natsStatus install_callbacks(natsOptions* opts, callback_bridge* bridge);

} // namespace natsvisor::detail
