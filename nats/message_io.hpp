#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nats/nats.h>

#include "caf/actor_control_block.hpp"

#include "base/pending_budget.hpp"
#include "messages/types.hpp"

namespace natsvisor::detail {

/// The pending limits of one message-path subscription (base/pending_budget.hpp), shared by
/// its message handler, the credit of every message it handed over, and the connection actor.
/// No lock: the budget is lock-free; the rest is constant or the connection actor's alone.
struct subscription_flow {
  subscription_flow(uint64_t id, caf::weak_actor_ptr owner, int max_messages, int max_bytes);
  const uint64_t id;
  const caf::weak_actor_ptr owner; ///< told (sub_slow, id) when an episode starts
  const int max_messages;
  const int max_bytes;
  pending_budget budget;
  /// nats.c's drop count of the subscription (its own queue) when the connection actor last
  /// read it: only that actor touches this.
  int64_t dropped_in_nats = 0;
};

/// Copies a nats.c message into the value that travels through mailboxes.
nats_message to_message(natsMsg* msg, uint64_t subscription);

/// Publishes `m` (with `reply` as reply subject when not null); headers go through a natsMsg.
natsStatus publish(natsConnection* nc, const outgoing& m, const char* reply = nullptr);

/// Subscribes so that every message goes straight from nats.c's delivery thread to `target`'s
/// mailbox as a nats_message tagged with `id`, without passing through any other actor. The
/// closure holds only a weak handle and is freed by the subscription's completion callback,
/// which nats.c runs after the last delivery (on unsubscribe or when the connection closes).
/// With a `flow`, its limits bound nats.c's queue (natsSubscription_SetPendingLimits) and the
/// messages handed over that the target still holds: past them a message is dropped, and the
/// first drop of an episode is told to the flow's owner. Without one (the reply subscription,
/// drained by its own connection actor) only nats.c's default limits apply.
natsStatus subscribe(natsSubscription** sub, natsConnection* nc, const std::string& subject,
                     const std::string& queue, caf::weak_actor_ptr target, uint64_t id,
                     std::shared_ptr<subscription_flow> flow = nullptr);

} // namespace natsvisor::detail
