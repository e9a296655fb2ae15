#pragma once

#include <cstdint>
#include <string>

#include <nats/nats.h>

#include "caf/actor_control_block.hpp"

#include "messages/types.hpp"

namespace natsvisor::detail {

/// Copies a nats.c message into the value that travels through mailboxes.
nats_message to_message(natsMsg* msg, uint64_t subscription);

/// Publishes `m` (with `reply` as reply subject when not null); headers go through a natsMsg.
natsStatus publish(natsConnection* nc, const outgoing& m, const char* reply = nullptr);

/// Subscribes so that every message goes straight from nats.c's delivery thread to `target`'s
/// mailbox as a nats_message tagged with `id`, without passing through any other actor. The
/// closure holds only a weak handle and is freed by the subscription's completion callback,
/// which nats.c runs after the last delivery (on unsubscribe or when the connection closes).
natsStatus subscribe(natsSubscription** sub, natsConnection* nc, const std::string& subject,
                     const std::string& queue, caf::weak_actor_ptr target, uint64_t id);

} // namespace natsvisor::detail
