#include "actors/connection_actor.hpp"

#include <algorithm>
#include <vector>

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "config/url.hpp"
#include "nats/message_io.hpp"
#include "nats/options.hpp"
#include "nats/protocol.hpp"
#include "nats/status.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

connection_actor_state::~connection_actor_state() {
  // Normally closed by stop_conn already. Handles may outlive this actor: closing (not
  // destroying) makes them report closed; the last handle destroys the connection.
  if (core && !core->closed.exchange(true))
    natsConnection_Close(core->nc);
  // Closed subscriptions deliver nothing more; their closures go with their completion.
  for (auto& [id, sub] : subscriptions)
    natsSubscription_Destroy(sub);
  natsSubscription_Destroy(replies);
}

namespace {

using self_ptr = connection_actor_type*;

// nats.c's flusher waits a millisecond to batch small writes, which would add a millisecond to
// every request and reply. So the message path pushes its writes out at once, but only when no
// further message waits in this actor's mailbox: a burst is written with one flush, so batching
// follows the load. After a flush without PONG (a hung server), flushing pauses for a second.
void flush_if_idle(self_ptr self) {
  auto& st = self->state;
  if (st.cfg->nats.send_asap || !st.connected || !self->mailbox().empty())
    return;
  auto now = steady_clock::now();
  if (now < st.flush_paused_until)
    return;
  if (natsConnection_FlushTimeout(st.core->nc, 20) == NATS_TIMEOUT)
    st.flush_paused_until = now + std::chrono::seconds(1);
}

// nats.c's counters of this connection. Takes the connection's lock: the supervisor asks with a
// short deadline and keeps the last answer if this actor is stuck behind a reconnect attempt.
traffic read_stats(self_ptr self) {
  traffic t;
  natsStatistics* stats = nullptr;
  if (natsStatistics_Create(&stats) != NATS_OK)
    return t;
  if (natsConnection_GetStats(self->state.core->nc, stats) == NATS_OK)
    natsStatistics_GetCounts(stats, &t.in_msgs, &t.in_bytes, &t.out_msgs, &t.out_bytes,
                             &t.reconnects);
  natsStatistics_Destroy(stats);
  return t;
}

// The final counters of this generation, before it stops serving.
void send_stats(self_ptr self) {
  self->send(self->state.supervisor, stats_atom_v, self->state.generation, read_stats(self));
}

// -- the request table --------------------------------------------------------------------------

void arm_sweep(self_ptr self) {
  if (auto at = self->state.pending.rearm())
    self->delayed_send(self, std::max(caf::timespan{0}, *at - steady_clock::now()), req_to_atom_v);
}

void announce_up(self_ptr self, std::string js_problem);

health_result health_of(self_ptr self, bool healthy, caf::timespan rtt, std::string detail) {
  health_result r;
  r.url = self->state.url;
  r.generation = self->state.generation;
  r.healthy = healthy;
  r.rtt = rtt;
  r.detail = std::move(detail);
  return r;
}

// Answers a request that ends without its reply: an error, or what the kind ends with.
void end_without_reply(self_ptr self, pending_request& p, const caf::error& err) {
  switch (p.kind) {
    case pending_request::health:
      p.promise.deliver(health_of(self, false, caf::timespan{0}, describe(err)));
      break;
    case pending_request::subscribed:
      // The subscription exists in nats.c, which sends it to the server when it can.
      p.promise.deliver(p.id);
      break;
    case pending_request::js_check: announce_up(self, {}); break; // presumed available
    default: detail::deliver_error(p.promise, err);
  }
}

// Registers a request whose answer arrives on the reply subscription as "<inbox><token>" and
// returns the reply subject, or an error (full table, no reply subscription).
caf::expected<std::string> track(self_ptr self, pending_request p, caf::timespan timeout) {
  auto& st = self->state;
  if (!st.replies) {
    // Created on first use: a pooled connection that never requests costs no subscription.
    natsInbox* inbox = nullptr;
    if (auto s = natsInbox_Create(&inbox); s != NATS_OK)
      return from_status(s, errc::nats_error, st.url, "creating the reply inbox");
    st.inbox = std::string{inbox} + ".";
    natsInbox_Destroy(inbox);
    auto s = detail::subscribe(&st.replies, st.core->nc, st.inbox + "*", {}, self->ctrl(), 0);
    if (s != NATS_OK)
      return from_status(s, errc::nats_error, st.url, "creating the reply subscription");
  }
  auto now = steady_clock::now();
  p.started = now;
  auto token = st.pending.add(now + timeout, p);
  if (!token)
    return make_error(errc::overloaded,
                      "max_in_flight (" + std::to_string(st.cfg->max_in_flight)
                        + ") requests await a reply on this connection",
                      st.url);
  arm_sweep(self);
  return st.inbox + std::to_string(*token);
}

// A round trip through the server that blocks nobody: a message to the own inbox, whose arrival
// proves the server processed everything sent before it (a SUB, or just the PING of a health
// check). Answered by finish_request, or at `timeout` by the sweep.
void barrier(self_ptr self, pending_request p, caf::timespan timeout) {
  auto rp = p.promise;
  auto kind = p.kind;
  auto id = p.id;
  auto subject = track(self, std::move(p), timeout);
  if (!subject) {
    pending_request failed{kind, rp, {}, {}, id};
    end_without_reply(self, failed, subject.error());
    return;
  }
  natsConnection_Publish(self->state.core->nc, subject->c_str(), nullptr, 0);
  flush_if_idle(self);
}

// The server's "no responders" answer is an empty message with status header 503.
bool is_no_responders(const nats_message& msg) {
  if (!msg.payload.empty())
    return false;
  for (auto& [key, value] : msg.headers)
    if (key == "Status" && value.rfind("503", 0) == 0)
      return true;
  return false;
}

void send_request(self_ptr self, pending_request p, const outgoing& m, caf::timespan timeout);

// How long a JetStream publish answered "no responders" waits before it is sent again: a stream
// leader election takes seconds, so a few retries per second find the new leader soon enough.
constexpr auto js_retry_delay = std::chrono::milliseconds(200);

// Acts on on_js_no_responders' verdict (nats/protocol.hpp explains the choice) for a publish
// that got no responders; `stream_exists`: what the lookup said, if it said anything.
void settle_unanswered(self_ptr self, pending_request p, std::optional<bool> stream_exists) {
  auto& st = self->state;
  switch (on_js_no_responders(stream_exists, steady_clock::now(), p.deadline, js_retry_delay)) {
    case js_no_responders_verdict::no_stream:
      detail::deliver_error(p.promise,
                            make_error(errc::no_stream, "no stream captures the subject", st.url));
      return;
    case js_no_responders_verdict::unavailable:
      detail::deliver_error(p.promise,
                            make_error(errc::unavailable,
                                       "JetStream did not answer the publish in time (no "
                                       "responders): the stream is electing a leader, or "
                                       "JetStream is unavailable",
                                       st.url));
      return;
    case js_no_responders_verdict::retry: {
      // Parked in the request table until the delay ends; the sweep sends it again.
      p.kind = pending_request::js_retry;
      auto rp = p.promise;
      if (auto parked = track(self, std::move(p), js_retry_delay); !parked)
        detail::deliver_error(rp, std::move(parked.error()));
      return;
    }
  }
}

// A JetStream publish answered "no responders". The first time, JetStream is asked whether a
// stream captures the subject (answered as a js_lookup); after that the answer is known.
void publish_unanswered(self_ptr self, pending_request p) {
  auto& st = self->state;
  auto left = p.deadline - steady_clock::now();
  if (p.looked_up || left <= caf::timespan{0}) {
    settle_unanswered(self, std::move(p), std::nullopt); // exists or unknown: the same verdict
    return;
  }
  auto body = stream_names_request(p.retry.get_as<outgoing>(1).subject);
  p.kind = pending_request::js_lookup;
  auto rp = p.promise;
  auto subject = track(self, std::move(p), std::min(left, st.cfg->health_timeout));
  if (!subject) {
    detail::deliver_error(rp, std::move(subject.error()));
    return;
  }
  // A failed write is answered by the sweep (unknown) or by the connection's failure (bounce).
  natsConnection_PublishRequest(st.core->nc, stream_names_subject, subject->c_str(), body.data(),
                                static_cast<int>(body.size()));
  flush_if_idle(self);
}

// A publish whose retry delay ended (or whose lookup got no answer in time): sent again with the
// same headers, Nats-Msg-Id included, for the rest of its deadline.
void resend_publish(self_ptr self, pending_request p) {
  auto left = p.deadline - steady_clock::now();
  if (p.kind == pending_request::js_lookup || left <= caf::timespan{0}) {
    p.looked_up = true;
    settle_unanswered(self, std::move(p), std::nullopt);
    return;
  }
  p.kind = pending_request::js_ack;
  outgoing m = p.retry.get_as<outgoing>(1);
  send_request(self, std::move(p), m, left);
}

// A message on the reply subscription: completes its request.
void finish_request(self_ptr self, nats_message& msg) {
  auto& st = self->state;
  if (msg.subject.size() <= st.inbox.size())
    return;
  auto token = std::strtoull(msg.subject.c_str() + st.inbox.size(), nullptr, 10);
  auto found = st.pending.complete(token);
  if (!found)
    return; // answered already (deadline) or a second reply: nobody waits for it
  auto& p = *found;
  bool no_responders = is_no_responders(msg);
  switch (p.kind) {
    case pending_request::reply:
      if (no_responders)
        detail::deliver_error(p.promise, make_error(errc::no_responders,
                                                    "no subscriber for the request", st.url));
      else
        p.promise.deliver(std::move(msg));
      break;
    case pending_request::js_ack:
      if (no_responders)
        publish_unanswered(self, std::move(p));
      else if (auto ack = parse_js_ack(msg.payload, st.url))
        p.promise.deliver(std::move(*ack));
      else
        detail::deliver_error(p.promise, std::move(ack.error()));
      break;
    case pending_request::health:
      p.promise.deliver(health_of(self, true, steady_clock::now() - p.started, {}));
      break;
    case pending_request::subscribed: p.promise.deliver(p.id); break;
    case pending_request::js_lookup:
      p.looked_up = true;
      settle_unanswered(self, std::move(p),
                        no_responders ? std::nullopt : names_a_stream(msg.payload));
      break;
    case pending_request::js_retry: break; // not sent yet: no reply can come
    case pending_request::js_check: {
      std::string problem;
      if (no_responders)
        problem = "JetStream is not enabled on the server (no responders)";
      else if (auto err = jetstream_api_error(msg.payload, st.url))
        problem = "JetStream is not available for this account: " + detail_of(err);
      announce_up(self, std::move(problem));
      break;
    }
  }
}

void fail(self_ptr self, errc code, const std::string& what);

// A write into a connection that nats.c closed in the meantime (its closed callback is on its
// way): not this request's fault. The connection fails now, and whatever it holds (this request
// included, once bounced) waits for the next one. False for any other status.
bool closed_under_us(self_ptr self, natsStatus s) {
  if (s != NATS_CONNECTION_CLOSED)
    return false;
  fail(self, errc::connection_closed, "nats.c closed the connection for good");
  return true;
}

// Sends `m`, the request of `p` (a reply or a JetStream acknowledgement expected), on the reply
// subscription; answered by finish_request, or by the sweep at `timeout`.
void send_request(self_ptr self, pending_request p, const outgoing& m, caf::timespan timeout) {
  auto& st = self->state;
  auto rp = p.promise;
  auto subject = track(self, std::move(p), timeout);
  if (!subject) {
    detail::deliver_error(rp, std::move(subject.error()));
    return;
  }
  if (auto s = detail::publish(st.core->nc, m, subject->c_str()); s != NATS_OK) {
    if (closed_under_us(self, s))
      return; // bounced with the rest of the table
    auto token = std::strtoull(subject->c_str() + st.inbox.size(), nullptr, 10);
    st.pending.complete(token);
    detail::deliver_error(rp, from_status(s, errc::nats_error, st.url, "publish to " + m.subject));
    return;
  }
  flush_if_idle(self);
}

void start_request(self_ptr self, const outgoing& m, caf::timespan timeout,
                   pending_request::kind_t kind) {
  pending_request p{kind, self->make_response_promise(),
                    self->current_mailbox_element()->copy_content_to_message(), {}, 0};
  p.deadline = steady_clock::now() + timeout;
  send_request(self, std::move(p), m, timeout);
}

// -- lifecycle ----------------------------------------------------------------------------------

caf::behavior running(self_ptr self);
caf::behavior failed(self_ptr self);

// Tells the supervisor the connection is up, with both handles and why JetStream is unavailable
// (empty: available, or no answer in time, and then its own calls report).
void announce_up(self_ptr self, std::string js_problem) {
  auto& st = self->state;
  jetstream_handle js_handle;
  if (st.role == connection_role::shared) {
    jsCtx* js = nullptr;
    if (natsConnection_JetStream(&js, st.core->nc, nullptr) == NATS_OK)
      js_handle = jetstream_handle{std::make_shared<detail::jetstream_core>(st.core, js), st.url,
                                   st.generation};
  }
  self->send(st.supervisor, conn_up_atom_v, st.generation,
             connection_handle{st.core, st.url, st.generation}, std::move(js_handle),
             std::move(js_problem));
}

// The first connect succeeded. The shared connection first asks, without blocking, whether
// JetStream serves this account (one round trip, at most health_timeout); a pooled connection
// needs no JetStream and is announced at once.
void connected(self_ptr self) {
  auto& st = self->state;
  st.connected = true;
  if (st.role != connection_role::shared) {
    announce_up(self, {});
    return;
  }
  pending_request check{pending_request::js_check, {}, {}, {}, 0};
  auto subject = track(self, std::move(check), st.cfg->health_timeout);
  if (!subject) {
    announce_up(self, {});
    return;
  }
  natsConnection_PublishRequest(st.core->nc, "$JS.API.INFO", subject->c_str(), nullptr, 0);
  flush_if_idle(self);
}

// Answers every request in flight: with `err`, or (when the connection failed) by handing each
// message-path request back to the supervisor, to be parked for the next connection.
void drain_pending(self_ptr self, const caf::error& err, bool bounce) {
  auto& st = self->state;
  for (auto& [token, p] : st.pending.take_all()) {
    if (p.kind == pending_request::js_check)
      continue; // this generation is never announced now
    if (bounce && p.kind != pending_request::health && p.kind != pending_request::subscribed)
      p.promise.delegate(st.supervisor, bounce_atom_v, st.key, std::move(p.retry));
    else
      end_without_reply(self, p, err);
  }
}

// nats.c closed the connection for good (or the first connect failed): tell the supervisor and
// serve nothing more. Requests go back to the supervisor until it sends stop_conn.
void fail(self_ptr self, errc code, const std::string& what) {
  auto& st = self->state;
  if (st.failed)
    return;
  st.failed = true;
  st.connected = false;
  st.core->closed.store(true, std::memory_order_release);
  std::string detail = what;
  if (!st.last_async_error.empty())
    detail += ": " + st.last_async_error;
  auto err = make_error(code, std::move(detail), st.url);
  send_stats(self);
  self->send(st.supervisor, conn_down_atom_v, st.generation, err);
  drain_pending(self, err, true);
  self->become(failed(self));
}

// Closes on request (close_connection, shutdown, or after a failure): everything in flight is
// answered with `err`, the connection is closed (joining nats.c's threads, on this detached
// actor's own thread), and the actor quits.
void stop(self_ptr self, const caf::error& err) {
  auto& st = self->state;
  drain_pending(self, err, false);
  if (st.core && !st.core->closed.exchange(true)) {
    send_stats(self);
    natsConnection_Close(st.core->nc);
  }
  self->quit();
}

// Handlers every state has.
caf::message_handler common(self_ptr self) {
  return {
    [self](stop_conn_atom, const caf::error& err) { stop(self, err); },
    [self](async_error_atom, int32_t status) {
      auto text = natsStatus_GetText(static_cast<natsStatus>(status));
      log().warn("asynchronous error on {}: {}", self->state.url, text);
      self->state.last_async_error = text;
    },
    [self](lame_duck_atom) {
      log().warn("server of {} entered lame duck mode", self->state.url);
      self->send(self->state.supervisor, conn_event_atom_v, self->state.generation,
                 connection_state::connected, std::string{"server in lame duck mode"});
    },
    [self](stats_atom) { return self->state.core ? read_stats(self) : traffic{}; },
    [self](req_to_atom) {
      auto& st = self->state;
      for (auto& [token, p] : st.pending.expire(steady_clock::now())) {
        if (p.kind == pending_request::js_retry || p.kind == pending_request::js_lookup)
          resend_publish(self, std::move(p));
        else
          end_without_reply(self, p, make_error(errc::timeout, "no reply in time", st.url));
      }
      arm_sweep(self);
    },
  };
}

// Hands a message-path request back to the supervisor with its requester's promise.
template <class T>
caf::result<T> bounce(self_ptr self) {
  auto rp = self->make_response_promise();
  rp.delegate(self->state.supervisor, bounce_atom_v, self->state.key,
              self->current_mailbox_element()->move_content_to_message());
  return caf::delegated<T>{};
}

// The message path while nothing can serve it (not connected yet, or nats.c gave up).
caf::message_handler bouncing(self_ptr self) {
  return {
    [self](pub_atom, const outgoing&) { return bounce<caf::unit_t>(self); },
    [self](pub_atom, const std::vector<outgoing>&) { return bounce<uint64_t>(self); },
    [self](pub_atom, const packed_batch&) { return bounce<uint64_t>(self); },
    [self](req_atom, const outgoing&, caf::timespan) { return bounce<nats_message>(self); },
    [self](js_pub_atom, const outgoing&, caf::timespan) { return bounce<js_ack>(self); },
    // Durable in the supervisor: subscribed again on the next connection.
    [](sub_atom, uint64_t id, const std::string&, const std::string&, const caf::actor&) {
      return id;
    },
    [](unsub_atom, uint64_t) { /* nop: no connection holds it */ },
    [self](health_atom) { return health_of(self, false, caf::timespan{0}, "not connected"); },
    [](nats_message&) { /* nop: a late reply */ },
  };
}

caf::behavior failed(self_ptr self) {
  return bouncing(self).or_else(common(self)).or_else([](connected_atom) {},
                                                      [](disconnected_atom) {},
                                                      [](reconnected_atom) {}, [](closed_atom) {});
}

caf::behavior connecting(self_ptr self) {
  return caf::message_handler{
    [self](connected_atom) {
      connected(self);
      self->become(running(self));
    },
    [self](reconnected_atom) {
      connected(self);
      self->become(running(self));
    },
    [](disconnected_atom) {
      // nats.c reports failed attempts of the first connect as disconnects: nothing to tell.
    },
    [self](closed_atom) {
      fail(self, errc::connect_failed,
           "no server reachable after " + std::to_string(self->state.cfg->nats.max_reconnect)
             + " connect attempts");
    },
  }
    .or_else(bouncing(self))
    .or_else(common(self));
}

caf::error publish_error(self_ptr self, natsStatus s, const std::string& subject) {
  return from_status(s, errc::nats_error, self->state.url, "publish to " + subject);
}

// The message path while connected or reconnecting (nats.c buffers writes meanwhile).
caf::message_handler serving(self_ptr self) {
  return {
    [self](health_atom) {
      auto rp = self->make_response_promise();
      barrier(self, pending_request{pending_request::health, rp, {}, {}, 0},
              self->state.cfg->health_timeout);
      return rp;
    },
    [self](pub_atom, const outgoing& m) -> caf::result<caf::unit_t> {
      auto s = detail::publish(self->state.core->nc, m);
      if (closed_under_us(self, s))
        return bounce<caf::unit_t>(self);
      if (s != NATS_OK)
        return detail::fail<caf::unit_t>(self, publish_error(self, s, m.subject));
      flush_if_idle(self);
      return caf::unit;
    },
    [self](pub_atom, const std::vector<outgoing>& batch) -> caf::result<uint64_t> {
      uint64_t sent = 0;
      for (auto& m : batch) {
        auto s = detail::publish(self->state.core->nc, m);
        if (sent == 0 && closed_under_us(self, s))
          return bounce<uint64_t>(self);
        if (s != NATS_OK) {
          // Say how many went out, so a retry can skip them instead of duplicating them.
          flush_if_idle(self);
          return detail::fail<uint64_t>(
            self, publish_error(self, s,
                                m.subject + " (" + std::to_string(sent) + " of "
                                  + std::to_string(batch.size()) + " messages were sent)"));
        }
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{}; // fire and forget: no count to send back
      return sent;
    },
    [self](pub_atom, const packed_batch& batch) -> caf::result<uint64_t> {
      auto nc = self->state.core->nc;
      size_t offset = 0;
      uint64_t sent = 0;
      for (auto size : batch.sizes) {
        if (offset + size > batch.data.size())
          return detail::fail<uint64_t>(
            self,
            make_error(errc::nats_error, "packed batch sizes exceed its data", self->state.url));
        auto s = natsConnection_Publish(nc, batch.subject.c_str(), batch.data.data() + offset,
                                        static_cast<int>(size));
        if (sent == 0 && closed_under_us(self, s))
          return bounce<uint64_t>(self);
        if (s != NATS_OK)
          return detail::fail<uint64_t>(
            self, publish_error(self, s,
                                batch.subject + " (" + std::to_string(sent) + " of "
                                  + std::to_string(batch.size()) + " messages were sent)"));
        offset += size;
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{};
      return sent;
    },
    [self](req_atom, const outgoing& m, caf::timespan timeout) {
      start_request(self, m, timeout, pending_request::reply);
      return caf::delegated<nats_message>{};
    },
    [self](js_pub_atom, const outgoing& m, caf::timespan timeout) {
      start_request(self, m, timeout, pending_request::js_ack);
      return caf::delegated<js_ack>{};
    },
    [self](nats_message& reply) { finish_request(self, reply); },
    [self](sub_atom, uint64_t id, const std::string& subject, const std::string& queue,
           const caf::actor& subscriber) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.subscriptions.count(id) != 0)
        return id;
      natsSubscription* sub = nullptr;
      auto s = detail::subscribe(&sub, st.core->nc, subject, queue,
                                 caf::actor_cast<caf::weak_actor_ptr>(subscriber), id);
      if (closed_under_us(self, s))
        return id; // not a refusal: the supervisor subscribes it on the next connection
      if (s != NATS_OK)
        return detail::fail<uint64_t>(
          self, from_status(s, errc::nats_error, st.url, "subscribe to " + subject));
      st.subscriptions.emplace(id, sub);
      // Answered once the server has the SUB (a message published after the answer reaches the
      // subscriber), through a round trip that blocks nobody.
      auto rp = self->make_response_promise();
      barrier(self, pending_request{pending_request::subscribed, rp, {}, {}, id},
              st.cfg->health_timeout);
      return caf::delegated<uint64_t>{};
    },
    [self](unsub_atom, uint64_t id) {
      auto& st = self->state;
      if (auto it = st.subscriptions.find(id); it != st.subscriptions.end()) {
        natsSubscription_Unsubscribe(it->second);
        natsSubscription_Destroy(it->second);
        st.subscriptions.erase(it);
      }
    },
  };
}

caf::behavior running(self_ptr self) {
  auto event = [self](connection_state s, std::string detail) {
    self->send(self->state.supervisor, conn_event_atom_v, self->state.generation, s,
               std::move(detail));
  };
  return caf::message_handler{
    [](connected_atom) { /* nop: already connected */ },
    // Logged once, by the supervisor, as the slot's state change.
    [self, event](disconnected_atom) {
      self->state.connected = false;
      event(connection_state::reconnecting, "disconnected; nats.c reconnects");
    },
    [self, event](reconnected_atom) {
      self->state.connected = true;
      event(connection_state::connected, "reconnected by nats.c");
    },
    [self](closed_atom) {
      fail(self, errc::connection_closed, "nats.c closed the connection for good");
    },
  }
    .or_else(serving(self))
    .or_else(common(self));
}

} // namespace

caf::behavior connection_actor(connection_actor_type* self, std::string key, uint64_t generation,
                               connection_role role, uint32_t slot, caf::actor supervisor,
                               std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.key = std::move(key);
  st.url = redact(st.key);
  st.generation = generation;
  st.role = role;
  st.supervisor = std::move(supervisor);
  st.cfg = std::move(cfg);
  st.pending = request_table<pending_request>{static_cast<size_t>(st.cfg->max_in_flight)};
  // A stray message (e.g. a late reply) must never take a connection down.
  detail::tolerate_strays(self, "connection actor");
  // Without its supervisor nobody could use this connection.
  self->monitor(st.supervisor);
  self->set_down_handler([self](caf::down_msg&) {
    stop(self, make_error(errc::service_stopped, "the connection service stopped", self->state.url));
  });
  auto servers = parse_servers(st.key);
  if (!servers) {
    self->quit(servers.error());
    return {};
  }
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK)
    s = configure_options(opts, *servers, *st.cfg,
                          connection_name(st.cfg->app_name, slot, generation));
  if (s == NATS_OK && role == connection_role::shared)
    s = use_shared_delivery(opts);
  if (s != NATS_OK) {
    auto err = from_status(s, errc::invalid_config, st.url, "invalid connection options");
    natsOptions_Destroy(opts);
    self->quit(std::move(err));
    return {};
  }
  st.callbacks = std::make_unique<detail::callback_owner>(self->ctrl());
  if (s = detail::install_callbacks(opts, *st.callbacks); s != NATS_OK) {
    natsOptions_Destroy(opts);
    self->quit(from_status(s, errc::connect_failed, st.url, "installing callbacks"));
    return {};
  }
  log().info("connecting to {} (generation {})", st.url, st.generation);
  natsConnection* nc = nullptr;
  // Blocks for at most one attempt (connection_timeout): this actor runs detached. With
  // retry-on-failed-connect a refused first attempt returns NATS_NOT_YET_CONNECTED at once.
  s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    // nats.c may already have queued the closed callback: it finds this actor's entry gone
    // (callbacks free nothing), so the order does not matter.
    self->quit(from_status(s, errc::connect_failed, st.url, "connect"));
    return {};
  }
  st.core = std::make_shared<detail::connection_core>(nc);
  if (s == NATS_OK) {
    connected(self);
    return running(self);
  }
  log().info("no server at {} yet: nats.c keeps trying (generation {})", st.url, st.generation);
  return connecting(self);
}

} // namespace natsvisor
