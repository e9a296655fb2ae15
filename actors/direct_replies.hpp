#pragma once

// Replies straight from nats.c's delivery thread to the requester. A message-path request used to
// cross four threads on its way back: nats.c's reader, its delivery thread, the (detached)
// connection actor, the requester's scheduler worker. Here the reply subscription's callback
// answers the requester itself, as the connection actor's response promise would, through a
// reply slot (actors/reply_slots.hpp) that only one of the reply, the deadline, the connection's
// loss and the actor's end can win. The connection actor keeps owning deadlines and cleanup.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "caf/actor_control_block.hpp"
#include "caf/message_id.hpp"
#include "caf/response_promise.hpp"

#include "actors/reply_slots.hpp"
#include "messages/types.hpp"

namespace natsvisor {

/// Where a response goes: what caf::response_promise::deliver uses, copied out of the promise
/// (deliver itself must run on the promise's actor, never on a nats.c thread).
struct reply_target {
  caf::strong_actor_ptr source;
  std::vector<caf::strong_actor_ptr> stages;
  caf::message_id id;
};

/// A request table token whose reply goes straight to the requester: the slot's ticket with
/// this bit set (the table's own tokens count up from 1 and never reach it).
constexpr uint64_t direct_token_bit = uint64_t{1} << 63;

inline bool is_direct(uint64_t token) noexcept {
  return (token & direct_token_bit) != 0;
}

/// Shared by a connection actor and its reply subscription's callback, which nats.c may run
/// after the actor ended (until the subscription completes).
struct reply_route {
  reply_route(caf::weak_actor_ptr owner, std::string url, size_t capacity)
    : owner(std::move(owner)), url(std::move(url)), slots(capacity) {}

  caf::weak_actor_ptr owner; ///< the connection actor: other replies go to it; the sender
  std::string url;           ///< redacted, for errors
  reply_slots<reply_target> slots;
};

/// The server's "no responders" answer: an empty message with status header 503.
bool is_no_responders(const nats_message& msg);

/// What a request answered "no responders" gets.
caf::error no_responders_error(const std::string& url);

/// Subscribes to `subject` ("<inbox>.*"): a reply to a direct token answers its requester from
/// the delivery thread (or nobody, when the owner cancelled it first); every other message goes
/// to the owner as a nats_message, as detail::subscribe does.
natsStatus subscribe_replies(natsSubscription** sub, natsConnection* nc,
                             const std::string& subject, std::shared_ptr<reply_route> route);

/// Arms a slot for the requester of `rp`: the request table token (a direct one), or nullopt
/// when the promise cannot be answered that way (no requester) or all slots are busy.
std::optional<uint64_t> arm_direct(reply_route& route, const caf::response_promise& rp);

} // namespace natsvisor
