#include "actors/connection_actor.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "caf/all.hpp"

#include "actors/link_gate.hpp"
#include "base/logging.hpp"
#include "base/replies.hpp"
#include "base/request_deadline.hpp"
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
  for (auto* sub : unsubscribe_later)
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
  bool busy = !st.connected || st.callbacks->reconnecting();
  if (st.cfg->nats.send_asap || gate(nats_call::flush, busy) != gate_action::call
      || !self->mailbox().empty())
    return;
  auto now = steady_clock::now();
  if (now < st.flush_paused_until)
    return;
  if (natsConnection_FlushTimeout(st.core->nc, 20) == NATS_TIMEOUT)
    st.flush_paused_until = now + std::chrono::seconds(1);
}

// nats.c's counters of this connection. Takes the connection's lock: only while nats.c does not
// reconnect, or once it closed the connection.
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

// The counters now, or the last ones read while nats.c (re)connects and may hold the lock.
traffic current_stats(self_ptr self) {
  auto& st = self->state;
  bool busy = !st.running || st.callbacks->reconnecting();
  if (st.core && gate(nats_call::stats, busy) == gate_action::call)
    st.last_stats = read_stats(self);
  return st.last_stats;
}

// The final counters of this generation, before it stops serving.
void send_stats(self_ptr self, traffic t) {
  self->send(self->state.supervisor, stats_atom_v, self->state.generation, std::move(t));
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

std::string reply_subject(self_ptr self, uint64_t token) {
  return self->state.inbox + std::to_string(token);
}

// Reply slots per connection: a few pages, enough for any number of requesters that wait for
// their replies at once; past them requests take the way through this actor.
size_t direct_reply_slots(const connection_actor_state& st) {
  return std::min<size_t>(1024, static_cast<size_t>(st.cfg->max_in_flight));
}

// Whether this actor answers request `token` (taken from the table): a direct request is this
// actor's only if its slot was not taken by the reply (whose requester has the answer already).
bool owns_answer(self_ptr self, uint64_t token) {
  return !is_direct(token) || self->state.route->slots.cancel(token & ~direct_token_bit);
}

// Forgets the direct requests that the reply subscription's callback answered meanwhile.
void forget_replied(self_ptr self) {
  auto& st = self->state;
  if (st.route)
    st.route->slots.reclaim([&st](uint64_t ticket) { st.pending.complete(ticket | direct_token_bit); });
}

// Registers a request whose answer arrives on the reply subscription as "<inbox><token>" and
// returns the token, or an error (full table, no reply subscription).
caf::expected<uint64_t> track(self_ptr self, pending_request p, caf::timespan timeout) {
  auto& st = self->state;
  if (!st.replies) {
    // Created on first use: a pooled connection that never requests costs no subscription.
    natsInbox* inbox = nullptr;
    if (auto s = natsInbox_Create(&inbox); s != NATS_OK)
      return from_status(s, errc::nats_error, st.url, "creating the reply inbox");
    st.inbox = std::string{inbox} + ".";
    natsInbox_Destroy(inbox);
    auto route = std::make_shared<reply_route>(self->ctrl(), st.url, direct_reply_slots(st));
    auto s = subscribe_replies(&st.replies, st.core->nc, st.inbox + "*", route);
    if (s != NATS_OK)
      return from_status(s, errc::nats_error, st.url, "creating the reply subscription");
    st.route = std::move(route);
  }
  forget_replied(self);
  auto now = steady_clock::now();
  p.started = now;
  std::optional<uint64_t> token;
  // A plain request's reply goes from nats.c's thread straight to its requester.
  if (p.kind == pending_request::reply)
    if (auto direct = arm_direct(*st.route, p.promise)) {
      if (st.pending.add_as(*direct, now + timeout, p))
        token = direct;
      else
        owns_answer(self, *direct); // full: the slot is free again, and add refuses below
    }
  if (!token)
    token = st.pending.add(now + timeout, p);
  if (!token)
    return make_error(errc::overloaded,
                      "max_in_flight (" + std::to_string(st.cfg->max_in_flight)
                        + ") requests await a reply on this connection",
                      st.url);
  arm_sweep(self);
  return *token;
}

// A round trip through the server that blocks nobody: a message to the own inbox, whose arrival
// proves the server processed everything sent before it (a SUB, or just the PING of a health
// check). Answered by finish_request, or at `timeout` by the sweep.
void barrier(self_ptr self, pending_request p, caf::timespan timeout) {
  auto rp = p.promise;
  auto kind = p.kind;
  auto id = p.id;
  auto token = track(self, std::move(p), timeout);
  if (!token) {
    pending_request failed{kind, rp, {}, {}, id};
    end_without_reply(self, failed, token.error());
    return;
  }
  natsConnection_Publish(self->state.core->nc, reply_subject(self, *token).c_str(), nullptr, 0);
  flush_if_idle(self);
}

gate_action gate_of(self_ptr self, nats_call call);
void dispatch_request(self_ptr self, pending_request p, const outgoing& m, caf::timespan timeout,
                      gate_action action);

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
  if (!st.js_problem.empty()) { // no JetStream here: nothing to wait for
    detail::deliver_error(p.promise, make_error(errc::jetstream_unavailable, st.js_problem, st.url));
    return;
  }
  auto left = p.deadline - steady_clock::now();
  if (p.looked_up || left <= caf::timespan{0}) {
    settle_unanswered(self, std::move(p), std::nullopt); // exists or unknown: the same verdict
    return;
  }
  if (gate_of(self, nats_call::request) == gate_action::hold) {
    // No lookup while nats.c reconnects: unknown for now, so the publish is retried (held till
    // then), and looked up at its next "no responders".
    settle_unanswered(self, std::move(p), std::nullopt);
    return;
  }
  auto body = stream_names_request(p.retry.get_as<outgoing>(1).subject);
  p.kind = pending_request::js_lookup;
  auto rp = p.promise;
  auto token = track(self, std::move(p), std::min(left, st.cfg->health_timeout));
  if (!token) {
    detail::deliver_error(rp, std::move(token.error()));
    return;
  }
  // A failed write is answered by the sweep (unknown) or by the connection's failure (bounce).
  natsConnection_PublishRequest(st.core->nc, stream_names_subject,
                                reply_subject(self, *token).c_str(), body.data(),
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
  dispatch_request(self, std::move(p), m, left, gate_of(self, nats_call::request));
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
        detail::deliver_error(p.promise, no_responders_error(st.url));
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
    case pending_request::confirmed: p.promise.deliver(caf::unit); break;
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

// -- while nats.c reconnects ---------------------------------------------------------------------

void resume(self_ptr self);

void tell(self_ptr self, connection_state state, std::string detail) {
  self->send(self->state.supervisor, conn_event_atom_v, self->state.generation, state,
             std::move(detail));
}

// Whether nats.c may be called now (the running behavior only). The flag is set by nats.c's
// callbacks before their message arrives: when it changed, the supervisor hears it first, so a
// request this actor hands back finds the slot reconnecting there; once nats.c is back, what
// waited for it is sent.
bool nats_free(self_ptr self) {
  auto& st = self->state;
  // The count first: a disconnect counted before the flag was cleared is either seen here or
  // shows as reconnecting below.
  auto disconnects = st.callbacks->disconnects();
  bool reconnecting = st.callbacks->reconnecting();
  auto news = news_of(!st.connected, reconnecting, disconnects != st.disconnects_told);
  if (news != link_news::none)
    st.disconnects_told = disconnects;
  if (news == link_news::lost || news == link_news::blip) {
    st.connected = false;
    st.holding = true; // until the supervisor's pub_resume
    tell(self, connection_state::reconnecting, "disconnected; nats.c reconnects");
  }
  if (news == link_news::regained || news == link_news::blip) {
    st.connected = true;
    tell(self, connection_state::connected, "reconnected by nats.c");
    resume(self);
  }
  return !reconnecting;
}

gate_action gate_of(self_ptr self, nats_call call) {
  return gate(call, !nats_free(self));
}

// Publishes a tracked request, checked against the server's limits first (the reply subject
// counts: past them the server would close the connection for every user of it). A failure
// answers it (or, closed under us, fails the connection, which hands it back with the rest of
// the table).
void send_request(self_ptr self, uint64_t token, const outgoing& m) {
  auto& st = self->state;
  auto subject = reply_subject(self, token);
  auto err = check_limits(st.core->limits(), m, subject.size(), st.url);
  if (!err) {
    auto s = detail::publish(st.core->nc, m, subject.c_str());
    if (s == NATS_OK || closed_under_us(self, s))
      return;
    err = from_status(s, errc::nats_error, st.url, "publish to " + quote_subject(m.subject));
  }
  if (auto p = st.pending.complete(token); p && owns_answer(self, token))
    detail::deliver_error(p->promise, std::move(err));
}

void hand_back(self_ptr self);

// Hands a request in flight back to the supervisor (its connection failed, or retires), to be
// served on the next one by the deadline it carries: its caller's (base/request_deadline.hpp).
// Past it, answered here.
void bounce_pending(self_ptr self, pending_request& p) {
  auto& st = self->state;
  // A confirmed publish goes to the outbox instead.
  if (p.kind != pending_request::confirmed && !time_left(p.deadline, steady_clock::now())) {
    detail::deliver_error(p.promise, make_error(errc::timeout, "no reply in time", st.url));
    return;
  }
  p.promise.delegate(st.supervisor, bounce_atom_v, st.key, std::move(p.retry));
}

// nats.c is back: what waited for it goes out. Held requests whose deadline passed meanwhile
// were answered already and are skipped.
void resume(self_ptr self) {
  auto& st = self->state;
  for (auto* sub : std::exchange(st.unsubscribe_later, {})) {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
  for (auto& [token, m] : std::exchange(st.held, {}))
    if (st.pending.contains(token) && !st.failed)
      send_request(self, token, m);
  flush_if_idle(self);
}

// Tracks request `p` and sends `m`, or, while nats.c reconnects (`action` hold), keeps it here
// with its deadline running, to be sent once nats.c is back (as nats.c's reconnect buffer would
// have done, without blocking anybody meanwhile).
void dispatch_request(self_ptr self, pending_request p, const outgoing& m, caf::timespan timeout,
                      gate_action action) {
  auto& st = self->state;
  if (st.failed) {
    // Failed meanwhile (e.g. earlier in the same sweep): the next connection serves it.
    bounce_pending(self, p);
    return;
  }
  auto rp = p.promise;
  auto token = track(self, std::move(p), timeout);
  if (!token) {
    detail::deliver_error(rp, std::move(token.error()));
    return;
  }
  if (action == gate_action::hold) {
    st.held.emplace_back(*token, m);
    return;
  }
  send_request(self, *token, m);
  flush_if_idle(self);
}

// Sends a request (a reply or a JetStream acknowledgement expected) on the reply subscription,
// until its caller's deadline (the time it waited in this actor's mailbox counts).
void start_request(self_ptr self, const outgoing& m, steady_time deadline,
                   pending_request::kind_t kind) {
  auto action = gate_of(self, nats_call::request);
  if (action == gate_action::hold && !self->state.replies) {
    hand_back(self); // creating the reply subscription would call nats.c
    return;
  }
  pending_request p{kind, self->make_response_promise(),
                    self->current_mailbox_element()->copy_content_to_message(), {}, 0};
  p.deadline = deadline;
  auto left = time_left(deadline, steady_clock::now());
  if (!left) {
    detail::deliver_error(p.promise, make_error(errc::timeout, "no reply in time", self->state.url));
    return;
  }
  dispatch_request(self, std::move(p), m, *left, action);
}

// -- lifecycle ----------------------------------------------------------------------------------

caf::behavior running(self_ptr self);
caf::behavior failed(self_ptr self);

// Tells the supervisor the connection is up, with both handles and why JetStream is unavailable
// (empty: available, or no answer in time, and then its own calls report).
void announce_up(self_ptr self, std::string js_problem) {
  auto& st = self->state;
  st.js_problem = js_problem;
  self->send(st.supervisor, conn_up_atom_v, st.generation,
             connection_handle{st.core, st.url, st.generation}, st.js, std::move(js_problem));
}

// The first connect succeeded. The shared connection first asks, without blocking, whether
// JetStream serves this account (one round trip, at most health_timeout); a pooled connection
// needs no JetStream and is announced at once.
void connected(self_ptr self) {
  auto& st = self->state;
  st.connected = true;
  // nats.c reports failed attempts of the first connect as disconnects: not news.
  st.disconnects_told = st.callbacks->disconnects();
  // Read once per connect, now that nats.c has the server's INFO: every later check reads the
  // copy, never nats.c (whose calls wait for the connection's lock during a reconnect).
  st.core->max_payload.store(natsConnection_GetMaxPayload(st.core->nc), std::memory_order_relaxed);
  st.running = true;
  if (st.role != connection_role::shared) {
    announce_up(self, {});
    return;
  }
  // Made now, while nats.c is connected: making it takes the connection's lock, which a reconnect
  // attempt may hold by the time the JetStream check below ends.
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, st.core->nc, nullptr) == NATS_OK)
    st.js = jetstream_handle{std::make_shared<detail::jetstream_core>(st.core, js), st.url,
                             st.generation};
  pending_request check{pending_request::js_check, {}, {}, {}, 0};
  auto token = track(self, std::move(check), st.cfg->health_timeout);
  if (!token) {
    announce_up(self, {});
    return;
  }
  natsConnection_PublishRequest(st.core->nc, "$JS.API.INFO", reply_subject(self, *token).c_str(),
                                nullptr, 0);
  flush_if_idle(self);
}

// Answers every request in flight: with `err`, or (when the connection failed) by handing each
// message-path request back to the supervisor, to be parked for the next connection.
void drain_pending(self_ptr self, const caf::error& err, bool bounce) {
  auto& st = self->state;
  st.held.clear(); // in the table too
  forget_replied(self);
  for (auto& [token, p] : st.pending.take_all()) {
    if (p.kind == pending_request::js_check || !owns_answer(self, token))
      continue; // this generation is never announced now; or the reply was first
    if (bounce && p.kind != pending_request::health && p.kind != pending_request::subscribed)
      bounce_pending(self, p);
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
  st.running = false;
  st.core->closed.store(true, std::memory_order_release);
  std::string detail = what;
  if (!st.last_async_error.empty())
    detail += ": " + st.last_async_error;
  auto err = make_error(code, std::move(detail), st.url);
  send_stats(self, st.last_stats = read_stats(self)); // closed: nats.c holds no lock for long
  self->send(st.supervisor, conn_down_atom_v, st.generation, err);
  drain_pending(self, err, true);
  self->become(failed(self));
}

// Closes on request (close_connection, shutdown, or after a failure): everything in flight is
// answered with `err`, the connection is closed (joining nats.c's threads, on this detached
// actor's own thread), and the actor quits.
void stop(self_ptr self, const caf::error& err, bool bounce = false) {
  auto& st = self->state;
  drain_pending(self, err, bounce);
  if (st.core && !st.core->closed.exchange(true)) {
    send_stats(self, current_stats(self));
    // Waits for a reconnect attempt in progress (up to connection_timeout): only this actor's
    // own thread, on its way out.
    natsConnection_Close(st.core->nc);
  }
  self->quit();
}

// Tells the supervisor that message-path subscription `id` started a slow-consumer episode,
// with how many messages it dropped so far (at the handover and in nats.c's queue).
void report_slow(self_ptr self, uint64_t id) {
  auto& st = self->state;
  auto flow = st.flows.find(id);
  auto sub = st.subscriptions.find(id);
  if (flow == st.flows.end() || sub == st.subscriptions.end())
    return; // unsubscribed meanwhile
  // Lock-free counters (base/pending_budget.hpp), counted before the tell that brought us here.
  uint64_t dropped = flow->second->budget.dropped();
  uint64_t episodes = flow->second->budget.episodes();
  // Takes the subscription's lock only, never the connection's: callable while nats.c
  // reconnects.
  int64_t in_nats = 0;
  if (natsSubscription_GetDropped(sub->second, &in_nats) == NATS_OK && in_nats > 0)
    dropped += static_cast<uint64_t>(in_nats);
  self->send(st.supervisor, sub_slow_atom_v, id, dropped, episodes);
}

// nats.c dropped messages from its own queue of the subscription whose pointer value is `key`
// (its NATS_SLOW_CONSUMER). nats.c does not hold the subscription for that callback, so by now
// the pointer may name one freed since and its address a newer subscription: the pointer only
// says which subscription to look at. What starts an episode is that subscription's own drop
// count having grown since this actor last read it, which a subscription that never dropped
// cannot show. False when no message-path subscription has that key (the reply subscription's).
bool slow_in_nats(self_ptr self, uint64_t key) {
  auto& st = self->state;
  for (auto& [id, sub] : st.subscriptions) {
    if (static_cast<uint64_t>(reinterpret_cast<uintptr_t>(sub)) != key)
      continue;
    auto flow = st.flows.find(id);
    if (flow == st.flows.end())
      return false;
    // Takes the subscription's lock only, never the connection's.
    int64_t now = 0;
    if (natsSubscription_GetDropped(sub, &now) == NATS_OK && now > flow->second->dropped_in_nats) {
      flow->second->dropped_in_nats = now;
      if (flow->second->budget.dropped_elsewhere())
        report_slow(self, id);
    }
    return true;
  }
  return false;
}

// Handlers every state has.
caf::message_handler common(self_ptr self) {
  return {
    [self](stop_conn_atom, const caf::error& err) { stop(self, err); },
    [self](async_error_atom, int32_t status, uint64_t subscription) {
      if (status == NATS_SLOW_CONSUMER && subscription != 0 && slow_in_nats(self, subscription))
        return;
      auto text = natsStatus_GetText(static_cast<natsStatus>(status));
      log().warn("asynchronous error on {}: {}", self->state.url, text);
      self->state.last_async_error = text;
      if (status == NATS_CONNECTION_AUTH_FAILED)
        self->state.auth_refused = true;
    },
    [self](sub_slow_atom, uint64_t id) { report_slow(self, id); },
    [self](lame_duck_atom) {
      log().warn("server of {} entered lame duck mode", self->state.url);
      self->send(self->state.supervisor, lame_duck_atom_v, self->state.generation);
    },
    [self](retire_atom) {
      // Replaced by the next generation (make before break): requests in flight go back to the
      // supervisor, which serves them on the replacement, then the connection closes.
      stop(self, make_error(errc::connection_closed, "replaced", self->state.url), true);
    },
    [self](stats_atom) { return current_stats(self); },
    // Everything the supervisor sent before this was handed back or written: publish again.
    // A replacement's link news before its switch-over went unheard: while nats.c reconnects it
    // says so again (before this answer) and keeps handing publishes back.
    [self](pub_resume_atom) {
      bool told_before = !self->state.connected; // nats_free tells a change itself
      if (!nats_free(self)) {
        if (told_before)
          tell(self, connection_state::reconnecting, "disconnected; nats.c reconnects");
        return caf::unit;
      }
      self->state.holding = false;
      return caf::unit;
    },
    [self](req_to_atom) {
      auto& st = self->state;
      forget_replied(self);
      for (auto& [token, p] : st.pending.expire(steady_clock::now())) {
        if (!owns_answer(self, token))
          continue; // the reply was first
        if (p.kind == pending_request::js_retry || p.kind == pending_request::js_lookup)
          resend_publish(self, std::move(p));
        else
          end_without_reply(self, p, make_error(errc::timeout, "no reply in time", st.url));
      }
      // Held requests that timed out are never sent: their copies go now, not at the reconnect.
      auto& held = st.held;
      held.erase(std::remove_if(held.begin(), held.end(),
                                [&st](const auto& h) { return !st.pending.contains(h.first); }),
                 held.end());
      arm_sweep(self);
    },
  };
}

// A publish taken from the mailbox (to be written, failed or handed back): off the credit.
template <class T>
void settle(self_ptr self, const T& publish) {
  if (self->state.ledger)
    self->state.ledger->settle(cost_of(publish));
}

// Hands the current message-path request back to the supervisor with its requester's promise.
void hand_back(self_ptr self) {
  auto rp = self->make_response_promise();
  rp.delegate(self->state.supervisor, bounce_atom_v, self->state.key,
              self->current_mailbox_element()->move_content_to_message());
}

template <class T>
caf::result<T> bounce(self_ptr self) {
  hand_back(self);
  return caf::delegated<T>{};
}

// The message path while nothing can serve it (not connected yet, or nats.c gave up).
caf::message_handler bouncing(self_ptr self) {
  return {
    [self](pub_atom, const outgoing& m) {
      settle(self, m);
      return bounce<caf::unit_t>(self);
    },
    [self](pub_atom, const std::vector<outgoing>& b) {
      settle(self, b);
      return bounce<uint64_t>(self);
    },
    [self](pub_atom, const packed_batch& b) {
      settle(self, b);
      return bounce<uint64_t>(self);
    },
    [self](pub_conf_atom, const outgoing& m, caf::timespan) {
      settle(self, m);
      return bounce<caf::unit_t>(self);
    },
    [self](req_atom, const outgoing&, caller_deadline) { return bounce<nats_message>(self); },
    [self](js_pub_atom, const outgoing&, caller_deadline) { return bounce<js_ack>(self); },
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
      // nats.c also stops at once when a server that appeared meanwhile refused the CONNECT or
      // the TLS handshake, without saying so: the next connection's first attempt will tell.
      fail(self, errc::connect_failed,
           "nats.c gave up connecting (no server answered within "
             + std::to_string(self->state.cfg->nats.max_reconnect)
             + " attempts, or one refused the connection)");
    },
  }
    .or_else(bouncing(self))
    .or_else(common(self));
}

caf::error publish_error(self_ptr self, natsStatus s, const std::string& subject) {
  return from_status(s, errc::nats_error, self->state.url, "publish to " + quote_subject(subject));
}

// A message past the server's limits is refused before nats.c sees it: the server would close
// the connection for every user of it (nats/protocol.hpp).
caf::error over_limits(self_ptr self, std::string_view subject, size_t header_bytes,
                       size_t payload_bytes) {
  return check_limits(self->state.core->limits(), subject, 0, header_bytes, payload_bytes,
                      self->state.url);
}

// A batch's error says how many went out, so a retry can skip them instead of duplicating them.
caf::error partly_sent(const caf::error& err, uint64_t sent, size_t total) {
  return make_error(code_of(err),
                    detail_of(err) + " (" + std::to_string(sent) + " of " + std::to_string(total)
                      + " messages were sent)",
                    url_of(err));
}

// Publishes go back to the supervisor while nats.c reconnects and until the supervisor resumes
// them: it holds them across a restart, nats.c's reconnect buffer would not.
bool hands_back_publishes(self_ptr self) {
  return gate_of(self, nats_call::publish) == gate_action::bounce || !self->state.connected
         || self->state.holding;
}

// Hands one publish to nats.c; the answer when it was not written (handed back, or failed).
std::optional<caf::result<caf::unit_t>> write_publish(self_ptr self, const outgoing& m) {
  if (auto err = over_limits(self, m.subject, encoded_header_size(m.headers), m.payload.size()))
    return detail::fail<caf::unit_t>(self, std::move(err));
  if (hands_back_publishes(self))
    return bounce<caf::unit_t>(self);
  auto s = detail::publish(self->state.core->nc, m);
  if (closed_under_us(self, s))
    return bounce<caf::unit_t>(self);
  if (s != NATS_OK)
    return detail::fail<caf::unit_t>(self, publish_error(self, s, m.subject));
  return std::nullopt;
}

// The message path once connected. While nats.c reconnects, each handler asks the gate first
// and calls nothing of nats.c.
caf::message_handler serving(self_ptr self) {
  return {
    [self](health_atom) -> caf::result<health_result> {
      if (gate_of(self, nats_call::health) == gate_action::unhealthy)
        return health_of(self, false, caf::timespan{0}, "nats.c is reconnecting");
      auto rp = self->make_response_promise();
      barrier(self, pending_request{pending_request::health, rp, {}, {}, 0},
              self->state.cfg->health_timeout);
      return caf::delegated<health_result>{};
    },
    [self](pub_atom, const outgoing& m) -> caf::result<caf::unit_t> {
      settle(self, m);
      if (auto not_written = write_publish(self, m))
        return std::move(*not_written);
      flush_if_idle(self);
      return caf::unit;
    },
    [self](pub_atom, const std::vector<outgoing>& batch) -> caf::result<uint64_t> {
      settle(self, batch);
      if (hands_back_publishes(self))
        return bounce<uint64_t>(self);
      uint64_t sent = 0;
      for (auto& m : batch) {
        auto err = over_limits(self, m.subject, encoded_header_size(m.headers), m.payload.size());
        if (!err) {
          auto s = detail::publish(self->state.core->nc, m);
          if (sent == 0 && closed_under_us(self, s))
            return bounce<uint64_t>(self);
          if (s != NATS_OK)
            err = publish_error(self, s, m.subject);
        }
        if (err) {
          flush_if_idle(self);
          return detail::fail<uint64_t>(self, partly_sent(err, sent, batch.size()));
        }
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{}; // fire and forget: no count to send back
      return sent;
    },
    [self](pub_atom, const packed_batch& batch) -> caf::result<uint64_t> {
      settle(self, batch);
      if (hands_back_publishes(self))
        return bounce<uint64_t>(self);
      auto nc = self->state.core->nc;
      size_t offset = 0;
      uint64_t sent = 0;
      for (auto size : batch.sizes) {
        if (offset + size > batch.data.size())
          return detail::fail<uint64_t>(
            self,
            make_error(errc::nats_error, "packed batch sizes exceed its data", self->state.url));
        auto err = over_limits(self, batch.subject, 0, size);
        if (!err) {
          auto s = natsConnection_Publish(nc, batch.subject.c_str(), batch.data.data() + offset,
                                          static_cast<int>(size));
          if (sent == 0 && closed_under_us(self, s))
            return bounce<uint64_t>(self);
          if (s != NATS_OK)
            err = publish_error(self, s, batch.subject);
        }
        if (err) {
          flush_if_idle(self);
          return detail::fail<uint64_t>(self, partly_sent(err, sent, batch.size()));
        }
        offset += size;
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{};
      return sent;
    },
    // Answered once the server has read it: a round trip through the own inbox after it.
    [self](pub_conf_atom, const outgoing& m, caf::timespan timeout) -> caf::result<caf::unit_t> {
      settle(self, m);
      if (auto not_written = write_publish(self, m))
        return std::move(*not_written);
      auto rp = self->make_response_promise();
      auto retry = self->current_mailbox_element()->copy_content_to_message();
      barrier(self, pending_request{pending_request::confirmed, rp, std::move(retry), {}, 0},
              timeout);
      return caf::delegated<caf::unit_t>{};
    },
    [self](req_atom, const outgoing& m, caller_deadline d) {
      start_request(self, m, d.at, pending_request::reply);
      return caf::delegated<nats_message>{};
    },
    [self](js_pub_atom, const outgoing& m, caller_deadline d) {
      start_request(self, m, d.at, pending_request::js_ack);
      return caf::delegated<js_ack>{};
    },
    [self](nats_message& reply) { finish_request(self, reply); },
    [self](sub_atom, uint64_t id, const std::string& subject, const std::string& queue,
           const caf::actor& subscriber) -> caf::result<uint64_t> {
      auto& st = self->state;
      // Already subscribed; or, while nats.c reconnects, subscribed once it is back: the
      // supervisor subscribes everything again when the connection is up again.
      if (st.subscriptions.count(id) != 0
          || gate_of(self, nats_call::subscribe) != gate_action::call)
        return id;
      natsSubscription* sub = nullptr;
      auto flow = std::make_shared<detail::subscription_flow>(
        id, self->ctrl(), st.cfg->subscription_pending_messages,
        st.cfg->subscription_pending_bytes);
      auto s = detail::subscribe(&sub, st.core->nc, subject, queue,
                                 caf::actor_cast<caf::weak_actor_ptr>(subscriber), id, flow);
      if (closed_under_us(self, s))
        return id; // not a refusal: the supervisor subscribes it on the next connection
      if (s != NATS_OK)
        return detail::fail<uint64_t>(
          self, from_status(s, errc::nats_error, st.url, "subscribe to " + quote_subject(subject)));
      st.subscriptions.emplace(id, sub);
      st.flows.emplace(id, std::move(flow));
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
        if (gate_of(self, nats_call::unsubscribe) == gate_action::later) {
          st.unsubscribe_later.push_back(it->second);
        } else {
          natsSubscription_Unsubscribe(it->second);
          natsSubscription_Destroy(it->second);
        }
        st.subscriptions.erase(it);
        st.flows.erase(id);
      }
    },
  };
}

caf::behavior running(self_ptr self) {
  return caf::message_handler{
    [](connected_atom) { /* nop: already connected */ },
    // The callbacks set the flag these follow (perhaps read already by a request before them).
    // Logged once, by the supervisor, as the slot's state change.
    [self](disconnected_atom) { nats_free(self); },
    // After the AUTH_FAILED errors of the attempts before it (nats.c posts both in order).
    [self](reconnected_atom) {
      self->state.auth_refused = false;
      nats_free(self);
    },
    [self](closed_atom) {
      // nats.c stops reconnecting when the server refused the same credentials twice in a row:
      // that close is final for these settings, not a lost server.
      if (self->state.auth_refused)
        fail(self, errc::auth_failed, "the server refused the credentials while reconnecting");
      else
        fail(self, errc::connection_closed, "nats.c closed the connection for good");
    },
  }
    .or_else(serving(self))
    .or_else(common(self));
}

// One connect attempt without nats.c's retry-on-failed-connect, and why it failed (the thread's
// last error, read before any other nats.c call replaces it). Afterwards the options retry again,
// as install_callbacks set them, for the attempt that follows a failure.
std::pair<natsStatus, std::string> connect_once(natsConnection** nc, natsOptions* opts,
                                                const detail::callback_owner& callbacks) {
  auto s = natsOptions_SetRetryOnFailedConnect(opts, false, nullptr, nullptr);
  if (s == NATS_OK)
    s = natsConnection_Connect(nc, opts);
  if (s == NATS_OK)
    return {s, {}};
  natsStatus ignored = NATS_OK;
  auto text = nats_GetLastError(&ignored);
  std::pair<natsStatus, std::string> failed{s, text ? text : ""};
  if (auto restored
      = natsOptions_SetRetryOnFailedConnect(opts, true, detail::on_connected, callbacks.closure());
      restored != NATS_OK)
    failed.first = restored; // not a refusal: the next connect would not retry, so report it
  return failed;
}

} // namespace

caf::behavior connection_actor(connection_actor_type* self, std::string key, uint64_t generation,
                               connection_role role, uint32_t slot, caf::actor supervisor,
                               std::shared_ptr<const settings> cfg,
                               std::shared_ptr<publish_ledger> ledger) {
  auto& st = self->state;
  st.ledger = std::move(ledger);
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
  if (auto err = check_credential_files(*st.cfg, st.url)) {
    self->quit(std::move(err));
    return {};
  }
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK)
    s = configure_options(opts, *servers, *st.cfg,
                          connection_name(st.cfg->app_name, slot, generation));
  if (s == NATS_OK && role == connection_role::shared && st.cfg->subscription_delivery_threads > 0)
    s = use_shared_delivery(opts, st.cfg->subscription_delivery_threads);
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
  // Blocks for at most one attempt (connection_timeout) each: this actor runs detached.
  auto [first, reason] = connect_once(&nc, opts, *st.callbacks);
  s = first;
  if (s != NATS_OK) {
    // Only this first attempt tells why it was refused: nats.c's retry loop closes at once after
    // a refused CONNECT or TLS handshake and keeps nothing but "no server available".
    auto refusal = classify_connect_failure(s, reason, may_use_tls(*servers, *st.cfg));
    if (refusal.code != errc::connect_failed) {
      // Credentials or TLS: the same settings meet the same refusal, so no retry either here.
      natsOptions_Destroy(opts);
      self->quit(make_error(refusal.code, std::move(refusal.detail), st.url));
      return {};
    }
    // No server answered (yet): with retry-on-failed-connect a refused first attempt returns
    // NATS_NOT_YET_CONNECTED at once and nats.c keeps trying in the background.
    s = natsConnection_Connect(&nc, opts);
  }
  natsOptions_Destroy(opts);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    // nats.c may already have queued the closed callback: it finds this actor's entry gone
    // (callbacks free nothing), so the order does not matter.
    self->quit(from_status(s, errc::connect_failed, st.url, "connect"));
    return {};
  }
  st.core
    = std::make_shared<detail::connection_core>(nc, static_cast<size_t>(st.cfg->max_control_line));
  if (s == NATS_OK) {
    connected(self);
    return running(self);
  }
  log().info("no server at {} yet: nats.c keeps trying (generation {})", st.url, st.generation);
  return connecting(self);
}

} // namespace natsvisor
