#include "nats/message_io.hpp"

#include <cstdlib>
#include <memory>
#include <string>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"

#include "nats/callbacks.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor::detail {

namespace {

struct message_bridge {
  caf::weak_actor_ptr target;
  uint64_t id;
  std::shared_ptr<subscription_flow> flow; ///< null: unbounded (the reply subscription)
};

// Held by a message handed over: gives its room back once the message's last copy is gone
// (the subscriber processed it, or its mailbox was dropped).
struct credit {
  credit(std::shared_ptr<subscription_flow> f, uint64_t n) : flow(std::move(f)), bytes(n) {}
  ~credit() { flow->budget.release(bytes); }
  std::shared_ptr<subscription_flow> flow;
  uint64_t bytes;
};

// What a message counts against the byte limit: its subject and payload.
uint64_t size_of(natsMsg* msg) {
  auto data = natsMsg_GetDataLength(msg);
  auto subject = natsMsg_GetSubject(msg);
  return static_cast<uint64_t>(data > 0 ? data : 0)
         + (subject ? std::char_traits<char>::length(subject) : 0);
}

void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* bridge = static_cast<message_bridge*>(closure);
  at_c_boundary("message handler", [&] {
    auto hdl = caf::actor_cast<caf::actor>(bridge->target);
    if (!hdl)
      return;
    auto& flow = bridge->flow;
    if (!flow) {
      caf::anon_send(hdl, to_message(msg, bridge->id));
      return;
    }
    auto bytes = size_of(msg);
    auto verdict = flow->budget.admit(bytes);
    if (verdict == pending_budget::admission::accepted) {
      auto out = to_message(msg, bridge->id);
      out.credit = std::make_shared<const credit>(flow, bytes);
      caf::anon_send(hdl, std::move(out));
    } else if (verdict == pending_budget::admission::dropped_first) {
      if (auto owner = caf::actor_cast<caf::actor>(flow->owner))
        caf::anon_send(owner, sub_slow_atom_v, bridge->id);
    }
  });
  natsMsg_Destroy(msg);
}

void on_complete(void* closure) {
  delete static_cast<message_bridge*>(closure);
}

} // namespace

subscription_flow::subscription_flow(uint64_t id, caf::weak_actor_ptr owner, int max_messages,
                                     int max_bytes)
  : id(id),
    owner(std::move(owner)),
    max_messages(max_messages),
    max_bytes(max_bytes),
    budget(static_cast<uint64_t>(max_messages), static_cast<uint64_t>(max_bytes)) {}

nats_message to_message(natsMsg* msg, uint64_t subscription) {
  nats_message out;
  out.subject = natsMsg_GetSubject(msg);
  if (auto reply = natsMsg_GetReply(msg))
    out.reply = reply;
  if (auto data = natsMsg_GetData(msg))
    out.payload.assign(data, static_cast<size_t>(natsMsg_GetDataLength(msg)));
  out.subscription = subscription;
  const char** keys = nullptr;
  int nkeys = 0;
  if (natsMsgHeader_Keys(msg, &keys, &nkeys) == NATS_OK) {
    for (int i = 0; i < nkeys; ++i) {
      const char** values = nullptr;
      int nvalues = 0;
      if (natsMsgHeader_Values(msg, keys[i], &values, &nvalues) == NATS_OK) {
        for (int j = 0; j < nvalues; ++j)
          out.headers.emplace_back(keys[i], values[j]);
        free(static_cast<void*>(values));
      }
    }
    free(static_cast<void*>(keys));
  }
  return out;
}

natsStatus publish(natsConnection* nc, const outgoing& m, const char* reply) {
  auto size = static_cast<int>(m.payload.size());
  if (m.headers.empty())
    return reply
             ? natsConnection_PublishRequest(nc, m.subject.c_str(), reply, m.payload.data(), size)
             : natsConnection_Publish(nc, m.subject.c_str(), m.payload.data(), size);
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, m.subject.c_str(), reply, m.payload.data(), size);
  for (auto it = m.headers.begin(); s == NATS_OK && it != m.headers.end(); ++it)
    s = natsMsgHeader_Add(msg, it->first.c_str(), it->second.c_str());
  if (s == NATS_OK)
    s = natsConnection_PublishMsg(nc, msg);
  natsMsg_Destroy(msg);
  return s;
}

natsStatus subscribe(natsSubscription** sub, natsConnection* nc, const std::string& subject,
                     const std::string& queue, caf::weak_actor_ptr target, uint64_t id,
                     std::shared_ptr<subscription_flow> flow) {
  auto bridge = std::make_unique<message_bridge>(message_bridge{std::move(target), id, flow});
  natsStatus s = queue.empty()
                   ? natsConnection_Subscribe(sub, nc, subject.c_str(), on_message, bridge.get())
                   : natsConnection_QueueSubscribe(sub, nc, subject.c_str(), queue.c_str(),
                                                   on_message, bridge.get());
  if (s != NATS_OK)
    return s; // no subscription: the bridge dies here
  // nats.c's queue before the handler gets the same limits: a handler slowed down (a busy
  // shared delivery thread) drops there, and nats.c reports NATS_SLOW_CONSUMER.
  if (flow)
    s = natsSubscription_SetPendingLimits(*sub, flow->max_messages, flow->max_bytes);
  if (s == NATS_OK)
    s = natsSubscription_SetOnCompleteCB(*sub, on_complete, bridge.get());
  auto* closure = bridge.release(); // owned by on_complete from now on
  if (s != NATS_OK) {
    // Without the completion callback nothing can tell when the last delivery that uses the
    // closure has ended, so freeing it could race one: undo, and leave those few bytes.
    (void)closure;
    natsSubscription_Unsubscribe(*sub);
    natsSubscription_Destroy(*sub);
    *sub = nullptr;
  }
  return s;
}

} // namespace natsvisor::detail
