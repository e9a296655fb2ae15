#include "actors/pull_consumer.hpp"

#include <vector>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "nats/message_io.hpp"
#include "nats/status.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

namespace {

using namespace std::chrono_literals;

struct pull_state {
  ~pull_state() {
    release_batch();
    // Destroy (not Unsubscribe): the durable consumer stays on the server for the next run.
    natsSubscription_Destroy(sub);
  }
  void release_batch() {
    natsMsgList_Destroy(&batch);
    batch = natsMsgList{};
  }
  caf::actor service;
  caf::actor target;
  pull_consumer_config cfg;
  jetstream_handle js;
  natsSubscription* sub = nullptr;
  natsMsgList batch{}; ///< fetched, delivered, not yet acknowledged
  static inline const char* name = "natsvisor.pull_consumer";
};

using pull_actor = caf::stateful_actor<pull_state>;

int64_t to_ms(caf::timespan t) {
  return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(t).count());
}

// Creates the durable consumer if it is missing and binds a pull subscription to it. Blocking
// JetStream API calls: fine on this detached actor's own thread.
caf::error ensure_consumer(pull_actor* self) {
  auto& st = self->state;
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = st.cfg.durable.c_str();
  cc.AckPolicy = js_AckExplicit;
  if (!st.cfg.filter_subject.empty())
    cc.FilterSubject = st.cfg.filter_subject.c_str();
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddConsumer(&ci, st.js.get(), st.cfg.stream.c_str(), &cc, nullptr, &jerr);
  jsConsumerInfo_Destroy(ci);
  // An existing consumer with the same configuration is fine: that is the re-ensure case.
  if (s != NATS_OK && jerr != JSConsumerNameExistErr && jerr != JSConsumerExistingActiveErr)
    return from_status(s, errc::jetstream_error, st.js.url(),
                       "ensuring consumer " + st.cfg.durable + " (err_code "
                         + std::to_string(static_cast<int>(jerr)) + ")");
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = st.cfg.stream.c_str();
  so.Consumer = st.cfg.durable.c_str();
  s = js_PullSubscribe(&st.sub, st.js.get(), st.cfg.filter_subject.c_str(), st.cfg.durable.c_str(),
                       nullptr, &so, &jerr);
  if (s != NATS_OK)
    return from_status(s, errc::jetstream_error, st.js.url(), "binding to " + st.cfg.durable);
  return caf::none;
}

void drop_subscription(pull_actor* self) {
  auto& st = self->state;
  st.release_batch();
  natsSubscription_Destroy(st.sub);
  st.sub = nullptr;
  st.js = {};
}

// Two states, one behavior each:
//
//   binding  --durable consumer ensured-->  fetching
//      ^                                       |
//      +-------- connection replaced ----------+
//
// Exactly one of ensure_atom, fetch_atom or a batch request to the target is in flight at any
// time, so one batch at most is unacknowledged. It ends when the service or the target goes
// down, whatever the state.

caf::behavior fetching(pull_actor* self);

/// binding: asks the service for the JetStream handle and ensures the durable consumer, again
/// and again until both work.
caf::behavior binding(pull_actor* self) {
  return {
    [self](ensure_atom) {
      // The service parks this request while the connection (re)starts.
      self->request(self->state.service, 60s, get_js_atom_v, self->state.cfg.url)
        .then(
          [self](jetstream_handle& js) {
            self->state.js = std::move(js);
            if (auto err = ensure_consumer(self)) {
              log().warn("pull consumer {}: {}; retrying", self->state.cfg.durable, describe(err));
              drop_subscription(self);
              self->delayed_send(self, 500ms, ensure_atom_v);
              return;
            }
            log().info("pull consumer {} bound to stream {} (generation {})",
                       self->state.cfg.durable, self->state.cfg.stream,
                       self->state.js.generation());
            self->become(fetching(self));
            self->send(self, fetch_atom_v);
          },
          [self](caf::error& err) {
            log().warn("pull consumer {}: no JetStream handle: {}; retrying",
                       self->state.cfg.durable, describe(err));
            self->delayed_send(self, 500ms, ensure_atom_v);
          });
    },
  };
}

/// fetching: one fetch per fetch_atom, bounded by fetch_wait; a batch goes to the target, and
/// its reply (or none within process_timeout) acks or naks it before the next fetch.
caf::behavior fetching(pull_actor* self) {
  return {
    [self](fetch_atom) {
      auto& st = self->state;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      natsStatus s
        = natsSubscription_Fetch(&st.batch, st.sub, st.cfg.batch, to_ms(st.cfg.fetch_wait), &jerr);
      if (s == NATS_TIMEOUT || (s == NATS_OK && st.batch.Count == 0)) {
        st.release_batch();
        self->send(self, fetch_atom_v);
        return;
      }
      if (s != NATS_OK) {
        st.release_batch();
        if (st.js.closed()) {
          // The connection was replaced: a new generation needs a new subscription.
          drop_subscription(self);
          self->become(binding(self));
          self->send(self, ensure_atom_v);
        } else {
          // nats.c is reconnecting inside the same connection: try again shortly.
          self->delayed_send(self, 100ms, fetch_atom_v);
        }
        return;
      }
      std::vector<nats_message> msgs;
      msgs.reserve(static_cast<size_t>(st.batch.Count));
      for (int i = 0; i < st.batch.Count; ++i)
        msgs.push_back(detail::to_message(st.batch.Msgs[i], 0));
      self->request(st.target, st.cfg.process_timeout, std::move(msgs))
        .then(
          [self]() {
            auto& st = self->state;
            for (int i = 0; i < st.batch.Count; ++i)
              natsMsg_Ack(st.batch.Msgs[i], nullptr);
            st.release_batch();
            self->send(self, fetch_atom_v);
          },
          [self](caf::error& err) {
            auto& st = self->state;
            log().warn("pull consumer {}: batch not processed ({}): redelivering", st.cfg.durable,
                       describe(err));
            for (int i = 0; i < st.batch.Count; ++i)
              natsMsg_Nak(st.batch.Msgs[i], nullptr);
            st.release_batch();
            self->send(self, fetch_atom_v);
          });
    },
  };
}

} // namespace

caf::actor spawn_pull_consumer(caf::actor_system& sys, caf::actor service, caf::actor target,
                               pull_consumer_config cfg) {
  return sys.spawn<caf::detached>([service, target, cfg](pull_actor* self) -> caf::behavior {
    auto& st = self->state;
    st.service = service;
    st.target = target;
    st.cfg = cfg;
    detail::tolerate_strays(self, "pull consumer");
    // It ends with whichever goes first: without its service it could only retry forever (and
    // keep the actor system alive), without its target nobody processes the batches.
    self->monitor(service);
    self->monitor(target);
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& st = self->state;
      log().info("pull consumer {}: its {} is down ({}); stopping", st.cfg.durable,
                 dm.source == st.service.address() ? "service" : "target",
                 describe(dm.reason, false));
      self->quit();
    });
    self->send(self, ensure_atom_v);
    return binding(self);
  });
}

} // namespace natsvisor
