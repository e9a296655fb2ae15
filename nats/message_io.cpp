#include "nats/message_io.hpp"

#include <cstdlib>
#include <memory>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"

#include "nats/callbacks.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor::detail {

namespace {

struct message_bridge {
  caf::weak_actor_ptr target;
  uint64_t id;
};

void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* bridge = static_cast<message_bridge*>(closure);
  at_c_boundary("message handler", [&] {
    if (auto hdl = caf::actor_cast<caf::actor>(bridge->target))
      caf::anon_send(hdl, to_message(msg, bridge->id));
  });
  natsMsg_Destroy(msg);
}

void on_complete(void* closure) {
  delete static_cast<message_bridge*>(closure);
}

} // namespace

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
                     const std::string& queue, caf::weak_actor_ptr target, uint64_t id) {
  auto bridge = std::make_unique<message_bridge>(message_bridge{std::move(target), id});
  natsStatus s = queue.empty()
                   ? natsConnection_Subscribe(sub, nc, subject.c_str(), on_message, bridge.get())
                   : natsConnection_QueueSubscribe(sub, nc, subject.c_str(), queue.c_str(),
                                                   on_message, bridge.get());
  if (s != NATS_OK)
    return s; // no subscription: the bridge dies here
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
