#include "actors/direct_replies.hpp"

#include <cstdlib>
#include <cstring>

#include "caf/actor_cast.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/make_message.hpp"
#include "caf/send.hpp"

#include "messages/errors.hpp"
#include "nats/callbacks.hpp"
#include "nats/message_io.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

namespace {

struct reply_closure {
  std::shared_ptr<reply_route> route;
};

// Answers the requester as response_promise::deliver would, from a foreign thread: enqueued
// without an execution unit, so CAF schedules the requester through its scheduler.
void respond(reply_route& route, reply_target& t, caf::message content) {
  auto sender = caf::actor_cast<caf::strong_actor_ptr>(route.owner);
  if (!t.stages.empty()) {
    auto next = std::move(t.stages.back());
    t.stages.pop_back();
    next->enqueue(caf::make_mailbox_element(std::move(t.source), t.id, std::move(t.stages),
                                            std::move(content)),
                  nullptr);
  } else if (t.source) {
    t.source->enqueue(std::move(sender), t.id.response_id(), std::move(content), nullptr);
  }
}

// The token after the subject's last '.', or 0 (no token of ours).
uint64_t token_of(const char* subject) {
  auto dot = std::strrchr(subject, '.');
  return dot ? std::strtoull(dot + 1, nullptr, 10) : 0;
}

void on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto& route = *static_cast<reply_closure*>(closure)->route;
  detail::at_c_boundary("reply handler", [&] {
    auto token = token_of(natsMsg_GetSubject(msg));
    if (!is_direct(token)) {
      if (auto hdl = caf::actor_cast<caf::actor>(route.owner))
        caf::anon_send(hdl, detail::to_message(msg, 0));
      return;
    }
    // Lost to the deadline or the connection's end: that answered the requester already.
    if (auto target = route.slots.take(token & ~direct_token_bit)) {
      auto reply = detail::to_message(msg, 0);
      respond(route, *target,
              is_no_responders(reply) ? caf::make_message(no_responders_error(route.url))
                                      : caf::make_message(std::move(reply)));
    }
  });
  natsMsg_Destroy(msg);
}

void on_complete(void* closure) {
  delete static_cast<reply_closure*>(closure);
}

} // namespace

bool is_no_responders(const nats_message& msg) {
  if (!msg.payload.empty())
    return false;
  for (auto& [key, value] : msg.headers)
    if (key == "Status" && value.rfind("503", 0) == 0)
      return true;
  return false;
}

caf::error no_responders_error(const std::string& url) {
  return make_error(errc::no_responders, "no subscriber for the request", url);
}

natsStatus subscribe_replies(natsSubscription** sub, natsConnection* nc,
                             const std::string& subject, std::shared_ptr<reply_route> route) {
  auto closure = std::make_unique<reply_closure>(reply_closure{std::move(route)});
  auto s = natsConnection_Subscribe(sub, nc, subject.c_str(), on_reply, closure.get());
  if (s != NATS_OK)
    return s;
  s = natsSubscription_SetOnCompleteCB(*sub, on_complete, closure.get());
  if (s != NATS_OK) {
    // Without the completion callback nothing tells when the last delivery using the closure
    // ended: undo, and leave the closure rather than risk freeing it under one. It keeps the
    // route and its slot table (about 64 bytes a slot), no slot armed: the caller (track) arms
    // slots only once this succeeded, and answers its request with the typed error. nats.c
    // refuses only a subscription closed meanwhile (its connection closed between these two
    // calls), after which every further subscribe fails before this point: once a connection.
    closure.release();
    natsSubscription_Unsubscribe(*sub);
    natsSubscription_Destroy(*sub);
    *sub = nullptr;
    return s;
  }
  closure.release(); // owned by on_complete from now on
  return s;
}

std::optional<uint64_t> arm_direct(reply_route& route, const caf::response_promise& rp) {
  if (rp.async() || (!rp.source() && rp.stages().empty()))
    return std::nullopt;
  reply_target t{rp.source(), rp.stages(), rp.id()};
  auto ticket = route.slots.arm(t);
  if (!ticket)
    return std::nullopt;
  return *ticket | direct_token_bit;
}

} // namespace natsvisor
