// How the connection supervisor acts on its pure cores: feed an event to a slot's state machine
// (`apply`), then do what it decided (`act`): spawn or stop a child, arm a restart, notify
// watchers, serve or fail what waits, hand out leases. Internal to the supervisor.

#include "supervisors/supervision.hpp"

#include <algorithm>

#include "caf/all.hpp"

#include "actors/connection_actor.hpp"
#include "base/logging.hpp"
#include "base/replies.hpp"
#include "base/request_deadline.hpp"
#include "config/url.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

namespace supervision {

std::string slot_name(uint32_t index) {
  return index == 0 ? std::string{"shared"} : "pool slot " + std::to_string(index);
}

slot_availability availability_of(connection_state s) {
  switch (s) {
    case connection_state::connecting:
    case connection_state::restarting: return slot_availability::starting;
    case connection_state::connected: return slot_availability::up;
    case connection_state::reconnecting:
    case connection_state::closing: return slot_availability::down;
    case connection_state::gave_up: return slot_availability::gave_up;
    case connection_state::closed: break;
  }
  return slot_availability::stopped;
}

url_entry* find_entry(self_ptr self, const std::string& key) {
  auto it = self->state.urls.find(key);
  return it == self->state.urls.end() ? nullptr : &it->second;
}

const std::string& key_of(self_ptr self, const std::string& url) {
  return url.empty() ? self->state.cfg->nats_url : url;
}

// Finds or creates the entry of `url`. Validates first, so bad input never creates anything.
caf::expected<url_entry*> entry_for(self_ptr self, const std::string& url) {
  auto& key = key_of(self, url);
  if (auto* e = find_entry(self, key))
    return e;
  if (auto servers = parse_servers(key); !servers)
    return servers.error();
  auto& st = self->state;
  std::pair<uint64_t, uint64_t> generations{0, 0};
  if (auto it = st.past_generations.find(key); it != st.past_generations.end()) {
    generations = it->second;
    st.past_generations.erase(it);
  }
  auto& e = st.urls.try_emplace(key, key, *st.cfg, generations).first->second;
  e.credit = credit_of(self, key);
  return &e;
}

publish_cost credit_limit(const settings& cfg) {
  return {static_cast<uint64_t>(cfg.publish_credit_messages),
          static_cast<uint64_t>(cfg.publish_credit_bytes)};
}

std::shared_ptr<publish_credit>
credit_in(std::map<std::string, std::shared_ptr<publish_credit>>& credits, const std::string& key,
          const settings& cfg) {
  auto& c = credits[key];
  if (!c)
    c = std::make_shared<publish_credit>(credit_limit(cfg));
  return c;
}

std::shared_ptr<publish_credit> credit_of(self_ptr self, const std::string& key) {
  return credit_in(self->state.credits, key, *self->state.cfg);
}

caf::error gave_up_error(const url_entry& e) {
  return make_error(e.gave_up_code, e.gave_up_reason, e.url);
}

// -- answering ----------------------------------------------------------------------------------

std::shared_ptr<detail::release_guard> guard(std::function<void()> f) {
  return std::make_shared<detail::release_guard>(std::move(f));
}

// Serves a request on the URL's shared connection, which is usable.
void answer(self_ptr self, url_entry& e, parked_request& r) {
  auto& s = e.slots[0];
  auto scope_guard = [&] {
    ++e.active_scopes;
    auto sup = caf::actor_cast<caf::actor>(self);
    return guard([sup, key = e.key] { caf::anon_send(sup, scope_end_atom_v, key); });
  };
  switch (r.kind) {
    case request_kind::connection: r.promise.deliver(s.conn); break;
    case request_kind::connection_scope:
      r.promise.deliver(connection_scope{s.conn, scope_guard()});
      break;
    case request_kind::jetstream:
    case request_kind::jetstream_scope:
      if (!s.js_problem.empty() || !s.js)
        detail::deliver_error(r.promise,
                              make_error(errc::jetstream_unavailable, s.js_problem, e.url));
      else if (r.kind == request_kind::jetstream)
        r.promise.deliver(s.js);
      else
        r.promise.deliver(jetstream_scope{s.js, scope_guard()});
      break;
    case request_kind::health: r.promise.delegate(s.child, health_atom_v); break;
    case request_kind::forward:
      // With its caller's deadline, which parking does not move.
      if (r.deadline && !time_left(*r.deadline, steady_clock::now())) {
        detail::deliver_error(r.promise, make_error(errc::timeout,
                                                    "no connection within the request's timeout",
                                                    e.url));
        break;
      }
      r.promise.delegate(s.child, std::move(r.forward));
      break;
  }
}

// The answer for a request that cannot be served: an error, or an unhealthy result.
void refuse(const url_entry& e, parked_request& r, caf::error err) {
  if (r.kind == request_kind::health) {
    health_result h;
    h.url = e.url;
    h.generation = e.slots[0].machine.generation();
    h.detail = describe(err);
    r.promise.deliver(std::move(h));
  } else {
    detail::deliver_error(r.promise, std::move(err));
  }
}

void fail_parked(url_entry& e, const caf::error& err) {
  for (auto& [id, r] : e.parked.take_all())
    refuse(e, r, err);
}

void fail_waiters(url_entry& e, const caf::error& err) {
  for (auto& [id, w] : e.pool.take_waiters())
    detail::deliver_error(w.promise, err);
}

// One timer for the earliest deadline of the URL's parked requests and lease waiters, and one
// for its held publishes that are awaited (up to 50 ms late, so that publishes held a
// millisecond apart do not each cost a scan of the outbox).
void arm_timers(self_ptr self, url_entry& e) {
  auto now = steady_clock::now();
  for (auto at : {e.parked.rearm(), e.pool.rearm()})
    if (at)
      self->delayed_send(self, std::max(caf::timespan{0}, *at - now), sweep_atom_v, e.key);
  if (auto at = e.outbox.rearm())
    self->delayed_send(self, std::max(caf::timespan{0}, *at - now) + std::chrono::milliseconds(50),
                       sweep_atom_v, e.key);
}

// -- publishes ------------------------------------------------------------------------------------

using held_entry = publish_outbox<held_publish>::entry;

bool is_publish(const caf::message& m) {
  return m.size() >= 2 && (m.match_element<pub_atom>(0) || m.match_element<pub_conf_atom>(0));
}

// Messages and bytes of a publish, as the outbox's bounds and the credit count them.
std::pair<uint64_t, uint64_t> publish_size(const caf::message& m) {
  publish_cost c{1, 0};
  if (m.match_element<outgoing>(1))
    c = cost_of(m.get_as<outgoing>(1));
  else if (m.match_element<std::vector<outgoing>>(1))
    c = cost_of(m.get_as<std::vector<outgoing>>(1));
  else if (m.match_element<packed_batch>(1))
    c = cost_of(m.get_as<packed_batch>(1));
  return {c.messages, c.bytes};
}

std::string drop_detail(self_ptr self, const url_entry& e, drop_reason reason) {
  auto& cfg = *self->state.cfg;
  switch (reason) {
    case drop_reason::over_bound:
      return "the publish buffer is full (publish_buffer_messages "
             + std::to_string(cfg.publish_buffer_messages) + ", publish_buffer_bytes "
             + std::to_string(cfg.publish_buffer_bytes) + ")";
    case drop_reason::gave_up:
      return "gave up on the URL before the publish could be written: " + e.gave_up_reason;
    case drop_reason::closed: return "the URL was closed before the publish could be written";
    case drop_reason::stopped:
      return "the connection service stopped before the publish could be written";
    case drop_reason::timeout:
      return "not written within request_timeout ("
             + std::to_string(to_ms(cfg.request_timeout)) + " ms), state "
             + to_string(e.slots[0].machine.state());
    case drop_reason::overloaded: return overload_detail(*e.credit);
  }
  return {};
}

// Tells each sender of `dropped` (awaiting: `err`, or errc::dropped; fire and forget: one
// publishes_dropped event to watchers with the counts). Already counted by the outbox.
void report_dropped(self_ptr self, url_entry& e, drop_reason reason, std::vector<held_entry> dropped,
                    caf::error err = {}) {
  if (dropped.empty())
    return;
  auto detail = drop_detail(self, e, reason);
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t answered = 0;
  for (auto& d : dropped) {
    if (d.item.promise.async()) {
      messages += d.messages;
      bytes += d.bytes;
      continue;
    }
    ++answered;
    d.item.promise.deliver(err ? err
                               : make_error(errc::dropped,
                                            std::string{to_string(reason)} + ": " + detail, e.url));
  }
  // Over the bound, one warning per filling of the buffer, not one per publish.
  if (reason != drop_reason::over_bound || !e.over_bound_logged)
    log().warn("{}: dropped {} fire-and-forget publish messages and {} awaited publishes ({}): {}",
               e.url, messages, answered, to_string(reason), detail);
  if (reason == drop_reason::over_bound)
    e.over_bound_logged = true;
  if (messages == 0)
    return;
  publishes_dropped ev{e.url, reason, messages, bytes, e.outbox.dropped(reason),
                       caf::make_timestamp()};
  for (auto& w : self->state.watchers)
    self->send(w, ev);
}

void drop_publishes(self_ptr self, url_entry& e, drop_reason reason) {
  report_dropped(self, e, reason, e.outbox.drop_all(reason));
}

void refuse_publish(self_ptr self, url_entry& e, held_publish p, caf::error err) {
  auto reason = self->state.shutting_down ? drop_reason::stopped
                : e.closing || e.gave_up_reason.empty() ? drop_reason::closed
                                                        : drop_reason::gave_up;
  auto [messages, bytes] = publish_size(p.msg);
  e.outbox.count_dropped(reason, messages);
  std::vector<held_entry> one;
  one.push_back(held_entry{std::move(p), messages, bytes, std::nullopt});
  report_dropped(self, e, reason, std::move(one), std::move(err));
}

std::string overload_detail(const publish_credit& c) {
  auto used = c.used();
  auto limit = c.limit();
  return std::to_string(used.messages) + " messages (" + std::to_string(used.bytes)
         + " bytes) of this URL are on their way to nats.c (publish_credit_messages "
         + std::to_string(limit.messages) + ", publish_credit_bytes " + std::to_string(limit.bytes)
         + "): its connection lags behind";
}

// How long fire-and-forget publishes refused for credit are summed up before watchers hear.
constexpr auto overload_report_delay = std::chrono::milliseconds(10);

// A publish that arrived uncharged and finds the credit used up: its sender is told at once
// (awaited: errc::overloaded; fire and forget: a publishes_dropped event with the counts within
// overload_report_delay; one warning per overload), so no mailbox downstream grows.
void refuse_overloaded(self_ptr self, url_entry& e, held_publish p) {
  if (!p.promise.async()) {
    p.promise.deliver(make_error(errc::overloaded, overload_detail(*e.credit), e.url));
    return;
  }
  auto [messages, bytes] = publish_size(p.msg);
  if (auto now = steady_clock::now(); now - e.overload_logged_at >= std::chrono::seconds(1)) {
    e.overload_logged_at = now;
    log().warn("{}: fire-and-forget publishes refused: {}", e.url, overload_detail(*e.credit));
  }
  if (e.overload_unreported.messages == 0)
    self->delayed_send(self, overload_report_delay, sweep_atom_v, e.key);
  e.overload_unreported += {messages, bytes};
}

void report_overloaded(self_ptr self, url_entry& e) {
  auto n = std::exchange(e.overload_unreported, {});
  if (n.messages == 0)
    return;
  publishes_dropped ev{e.url, drop_reason::overloaded, n.messages, n.bytes, e.credit->refused(),
                       caf::make_timestamp()};
  for (auto& w : self->state.watchers)
    self->send(w, ev);
}

// Sends a charged publish to the shared child, which refunds it when it takes it; what it never
// takes is refunded when it ends (its ledger), or now if it has ended already.
void hand_to_child(self_ptr self, url_entry& e, caf::response_promise& rp, caf::message msg,
                   publish_cost cost) {
  auto& child = e.slots[0].child;
  if (auto it = self->state.children.find(child.address()); it != self->state.children.end())
    it->second.ledger->handed(cost);
  else
    e.credit->refund(cost);
  rp.delegate(child, std::move(msg));
}

// The shared connection writes publishes now: connected, resumed, and nothing older is held.
bool takes_publishes(const url_entry& e) {
  auto& s = e.slots[0];
  return s.machine.state() == connection_state::connected && s.child && !e.resuming
         && e.outbox.empty();
}

void publish(self_ptr self, url_entry& e, held_publish p, bool returned) {
  auto [messages, bytes] = publish_size(p.msg);
  // A fresh publish is charged (by its sender or at the door); one handed back was refunded by
  // the connection actor that took it, and is accepted already: charged without asking.
  if (takes_publishes(e)) {
    if (returned)
      e.credit->charge({messages, bytes});
    hand_to_child(self, e, p.promise, std::move(p.msg), {messages, bytes});
    return;
  }
  if (!returned) // held (bounded by the outbox) or dropped: off the way to nats.c
    e.credit->refund({messages, bytes});
  // A sender awaiting the answer gets it within request_timeout, like a parked request.
  std::optional<steady_time> deadline;
  if (!p.promise.async())
    deadline = steady_clock::now() + self->state.cfg->request_timeout;
  held_entry x{std::move(p), messages, bytes, deadline};
  auto refused = returned ? e.outbox.add_returned(std::move(x)) : e.outbox.add(std::move(x));
  if (refused) {
    std::vector<held_entry> one;
    one.push_back(std::move(*refused));
    report_dropped(self, e, drop_reason::over_bound, std::move(one));
  }
  if (deadline)
    arm_timers(self, e);
}

void expire_publishes(self_ptr self, url_entry& e) {
  report_dropped(self, e, drop_reason::timeout, e.outbox.expire(steady_clock::now()));
}

// After the shared connection came (back) up: the child hands back every publish it got before
// this marker, and those reach this supervisor before its answer; only then are the held
// publishes written, in order. An answer to an older marker is ignored (a newer one is out).
void resume_publishes(self_ptr self, url_entry& e) {
  e.resuming = true;
  auto token = ++e.resume_token;
  auto done = [self, key = e.key, token] {
    auto* x = find_entry(self, key);
    if (!x || x->resume_token != token)
      return;
    x->resuming = false;
    if (x->slots[0].machine.state() == connection_state::connected && x->slots[0].child) {
      auto held = x->outbox.take_all();
      if (!held.empty())
        log().info("{}: writing {} held publishes", x->url, held.size());
      for (auto& h : held) {
        x->credit->charge({h.messages, h.bytes}); // accepted once: charged without asking
        hand_to_child(self, *x, h.item.promise, std::move(h.item.msg), {h.messages, h.bytes});
      }
      x->over_bound_logged = false;
    }
  };
  // No deadline: the child answers, or its end answers with an error.
  self->request(e.slots[0].child, caf::infinite, pub_resume_atom_v)
    .then([done] { done(); }, [done](caf::error&) { done(); });
}

// -- acting on a slot's decisions ---------------------------------------------------------------

void act(self_ptr self, url_entry& e, uint32_t index, std::vector<slot_output> actions);
void shut_down(self_ptr self, caf::error reason);

void act_on_pool(self_ptr self, url_entry& e, lease_pool<lease_waiter>::decisions d) {
  for (auto& g : d.grants) {
    auto& slot = e.slots[g.slot];
    slot.holder = g.waiter.holder;
    slot.leased_at = steady_clock::now();
    auto sup = caf::actor_cast<caf::actor>(self);
    auto release = [sup, key = e.key, i = g.slot, id = g.lease] {
      caf::anon_send(sup, lease_end_atom_v, key, i, id);
    };
    g.waiter.promise.deliver(lease{slot.conn, g.lease, guard(release)});
    self->delayed_send(self, self->state.cfg->leak_threshold, leak_check_atom_v, e.key, g.slot,
                       g.lease);
  }
  for (auto i : d.start)
    apply(self, e, i, slot_event::start{});
}

void apply(self_ptr self, url_entry& e, uint32_t index, slot_input event) {
  auto& s = e.slots[index];
  act(self, e, index, s.machine.handle(event));
  // The pool follows its slots' availability: grants and growth come back as decisions.
  if (index > 0)
    act_on_pool(self, e, e.pool.update(index, availability_of(s.machine.state())));
}

std::vector<url_entry*> entries(self_ptr self) {
  std::vector<url_entry*> out;
  for (auto& [key, e] : self->state.urls)
    out.push_back(&e);
  return out;
}

// Starts the shared connection unless the URL is closing (nothing new starts then).
void ensure_shared(self_ptr self, url_entry& e) {
  if (!e.closing)
    apply(self, e, 0, slot_event::start{});
}

bool all_closed(const url_entry& e) {
  return std::all_of(e.slots.begin(), e.slots.end(), [](const slot_runtime& s) {
    return s.machine.state() == connection_state::closed && !s.machine.child_alive();
  });
}

bool idle(const url_entry& e) {
  return !e.closing && all_closed(e) && e.parked.empty() && e.outbox.empty()
         && e.overload_unreported.messages == 0
         && e.pool.waiting() == 0 && e.pool.active() == 0 && e.active_scopes == 0;
}

void forget_if_idle(self_ptr self, const url_entry& e) {
  // Erased when this message comes back, so that no caller holds a reference to it then.
  if (idle(e))
    self->send(self, forget_atom_v, e.key);
}

void release_monitor(self_ptr self, const caf::actor& a) {
  auto& ws = self->state.watchers;
  if (std::find(ws.begin(), ws.end(), a) == ws.end() && !self->state.subscriptions.has_subscriber(a))
    self->demonitor(a);
}

void finish_close_if_done(self_ptr self, url_entry& e) {
  if (!e.closing || !all_closed(e))
    return;
  e.closing = false;
  // The erasure is on its way before the closers learn that the close completed: whatever they
  // ask next finds the URL gone.
  forget_if_idle(self, e);
  for (auto& f : std::exchange(e.on_closed, {}))
    f();
  if (self->state.shutting_down
      && std::all_of(self->state.urls.begin(), self->state.urls.end(),
                     [](const auto& kv) { return !kv.second.closing; }))
    self->quit(self->state.exit_reason);
}

void subscribe_on_child(self_ptr self, url_entry& e, const subscription_registry<caf::actor>::record& r,
                        caf::response_promise rp) {
  // Bounded: a child that ends without answering must not leave the subscriber waiting.
  auto deadline = self->state.cfg->health_timeout + std::chrono::seconds(5);
  self->request(e.slots[0].child, deadline, sub_atom_v, r.id, r.subject, r.queue, r.subscriber)
    .then([rp](uint64_t id) mutable { rp.deliver(id); },
          [self, rp, id = r.id, url = e.url](caf::error& err) mutable {
            if (code_of(err) == errc::none) { // the child went or was slow: kept for the next one
              rp.deliver(id);
              return;
            }
            // Refused by nats.c: keep no record, or every restart would subscribe it again.
            log().error("subscription {} on {} refused: {}", id, url, describe(err));
            if (auto removed = self->state.subscriptions.remove(id);
                removed && removed->last_for_subscriber)
              release_monitor(self, removed->rec.subscriber);
            detail::deliver_error(rp, std::move(err));
          });
}

void unsubscribe_on_children(self_ptr self, url_entry& e, uint64_t id) {
  // A replacement being prepared may hold it already.
  for (auto& child : {e.slots[0].child, e.slots[0].next.child})
    if (child)
      self->send(child, unsub_atom_v, id);
}

void on_ready(self_ptr self, url_entry& e, uint32_t index) {
  if (index != 0)
    return; // the pool learns it from the availability update
  // A fresh shared connection: subscribe everything again, then serve the parked requests.
  for (auto& r : self->state.subscriptions.of_url(e.key))
    subscribe_on_child(self, e, r, caf::response_promise{});
  for (auto& [id, r] : e.parked.take_all())
    answer(self, e, r);
  resume_publishes(self, e);
}

void notify(self_ptr self, url_entry& e, uint32_t index, const slot_action::notify& n) {
  auto& s = e.slots[index];
  auto gen = s.machine.generation();
  switch (n.state) {
    case connection_state::restarting:
    case connection_state::reconnecting:
      log().warn("{} ({}) generation {}: {}", e.url, slot_name(index), gen, n.detail);
      break;
    case connection_state::gave_up:
      // A permanent failure's reason already is its last error.
      if (n.detail.find(s.machine.last_error()) != std::string::npos)
        log().error("giving up on {} ({}): {}", e.url, slot_name(index), n.detail);
      else
        log().error("giving up on {} ({}): {}; last error: {}", e.url, slot_name(index), n.detail,
                    s.machine.last_error());
      break;
    default:
      log().info("{} ({}) generation {}: {}{}", e.url, slot_name(index), gen, to_string(n.state),
                 n.detail.empty() ? "" : ": " + n.detail);
  }
  state_changed ev{e.url, n.state, gen, n.detail, index, caf::make_timestamp()};
  for (auto& w : self->state.watchers)
    self->send(w, ev);
}

caf::actor spawn_child(self_ptr self, url_entry& e, uint32_t index, uint64_t generation) {
  auto role = index == 0 ? connection_role::shared : connection_role::pooled;
  auto ledger = std::make_shared<publish_ledger>(e.credit);
  auto child = self->spawn<caf::detached>(connection_actor, e.key, generation, role, index,
                                          caf::actor_cast<caf::actor>(self), self->state.cfg,
                                          ledger);
  self->monitor(child);
  self->state.children[child.address()] = {e.key, index, generation, std::move(ledger)};
  return child;
}

// How long a replaced child keeps its subscriptions after the switch-over. Its replacement's
// server confirmed the moved subscriptions, but the other nodes of the cluster learn of them
// over their routes a little later: until then a message published there reaches only the old
// subscription. Lame duck mode leaves seconds before the server closes its clients; half a
// second of overlap costs a few duplicates at most.
constexpr auto replacement_overlap = std::chrono::milliseconds(500);

// Subscribes every message-path subscription of the URL on the replacement child, then feeds
// `moved` once each was confirmed by its server (or refused, or the child went).
void move_subscriptions(self_ptr self, url_entry& e, uint32_t index, uint64_t generation) {
  auto subs = self->state.subscriptions.of_url(e.key);
  auto moved = [self, key = e.key, index, generation] {
    if (auto* found = find_entry(self, key))
      apply(self, *found, index, slot_event::moved{generation, steady_clock::now()});
  };
  if (subs.empty()) {
    moved();
    return;
  }
  auto left = std::make_shared<size_t>(subs.size());
  auto one_done = [left, moved] {
    if (--*left == 0)
      moved();
  };
  auto deadline = self->state.cfg->health_timeout + std::chrono::seconds(5);
  for (auto& r : subs)
    self->request(e.slots[index].next.child, deadline, sub_atom_v, r.id, r.subject, r.queue,
                  r.subscriber)
      .then([one_done](uint64_t) { one_done(); },
            [one_done, url = e.url, id = r.id, generation](caf::error& err) {
              // Subscribed again at the switch-over (subscribe_on_child) if the child lacks it.
              log().info("{}: subscription {} not confirmed on generation {}: {}", url, id,
                         generation, describe(err));
              one_done();
            });
}

// The replacement serves from now on; the replaced child keeps its subscriptions for the overlap,
// then hands back what it has in flight and closes.
void switch_over(self_ptr self, url_entry& e, uint32_t index, const slot_action::switch_over& x) {
  auto& s = e.slots[index];
  s.retiring = std::exchange(s.child, std::exchange(s.next.child, nullptr));
  s.conn = std::move(s.next.conn);
  s.js = std::move(s.next.js);
  s.js_problem = std::move(s.next.js_problem);
  s.next = {};
  s.retired += s.current;
  s.current = {};
  // Subscriptions made while the move ran are made now (the others are known to the child).
  for (auto& r : self->state.subscriptions.of_url(e.key))
    subscribe_on_child(self, e, r, caf::response_promise{});
  self->delayed_send(s.retiring, replacement_overlap, retire_atom_v);
  notify(self, e, index,
         slot_action::notify{s.machine.state(),
                             "generation " + std::to_string(x.next) + " replaced "
                               + std::to_string(x.old) + " (server in lame duck mode)"});
}

void act(self_ptr self, url_entry& e, uint32_t index, std::vector<slot_output> actions) {
  auto& s = e.slots[index];
  for (auto& a : actions) {
    if (auto* x = std::get_if<slot_action::spawn>(&a)) {
      s.conn = {};
      s.js = {};
      s.js_problem.clear();
      s.current = {};
      s.child = spawn_child(self, e, index, x->generation);
    } else if (auto* x = std::get_if<slot_action::replace>(&a)) {
      log().info("{} ({}): preparing generation {} beside {}, whose server is in lame duck mode",
                 e.url, slot_name(index), x->next, x->old);
      s.next = {};
      s.next.child = spawn_child(self, e, index, x->next);
    } else if (auto* x = std::get_if<slot_action::move>(&a)) {
      move_subscriptions(self, e, index, x->generation);
    } else if (auto* x = std::get_if<slot_action::switch_over>(&a)) {
      switch_over(self, e, index, *x);
    } else if (std::holds_alternative<slot_action::take_over>(a)) {
      s.child = std::exchange(s.next.child, nullptr);
      s.conn = std::move(s.next.conn);
      s.js = std::move(s.next.js);
      s.js_problem = std::move(s.next.js_problem);
      s.next = {};
    } else if (auto* x = std::get_if<slot_action::stop>(&a)) {
      auto& child = x->generation == s.machine.next_generation() ? s.next.child : s.child;
      self->send(child, stop_conn_atom_v, e.stop_reason);
    } else if (auto* x = std::get_if<slot_action::arm_restart>(&a)) {
      self->delayed_send(self, x->delay, restart_atom_v, e.key, index, x->generation);
    } else if (auto* x = std::get_if<slot_action::notify>(&a)) {
      notify(self, e, index, *x);
    } else if (std::holds_alternative<slot_action::ready>(a)) {
      on_ready(self, e, index);
    } else if (auto* x = std::get_if<slot_action::gave_up>(&a)) {
      // The URL gives up as a whole: one slot's verdict holds for the same servers.
      e.gave_up_reason = x->reason;
      e.gave_up_code = x->code;
      fail_parked(e, gave_up_error(e));
      fail_waiters(e, gave_up_error(e));
      drop_publishes(self, e, drop_reason::gave_up);
      if (self->state.cfg->escalate_on_give_up)
        shut_down(self, gave_up_error(e));
    } else if (std::holds_alternative<slot_action::closed>(a)) {
      finish_close_if_done(self, e);
    }
  }
}

// Forgets a child that ended; the slot decides what follows.
void child_ended(self_ptr self, url_entry& e, uint32_t index, uint64_t generation,
                 const caf::error& reason) {
  auto& s = e.slots[index];
  if (!s.machine.alive(generation))
    return; // reported already (conn_down)
  if (generation == s.machine.next_generation()) {
    s.next = {}; // a replacement that never served
  } else if (generation == s.machine.retiring_generation()) {
    s.retiring = nullptr;
  } else {
    s.child = nullptr;
    s.retired += s.current;
    s.current = {};
    s.conn = {};
    s.js = {};
    if (index > 0)
      ++e.pool_closed;
  }
  auto draw = std::uniform_real_distribution<double>{0.0, 1.0}(self->state.rng);
  auto detail = reason ? describe(reason, false) : std::string{"connection actor stopped"};
  apply(self, e, index,
        slot_event::child_down{generation, code_of(reason), detail, steady_clock::now(), draw});
}

// -- shutting down ------------------------------------------------------------------------------

void close_entry(self_ptr self, url_entry& e, caf::error reason) {
  if (!e.closing) {
    e.closing = true;
    e.stop_reason = std::move(reason);
  }
  e.gave_up_reason.clear(); // a URL closed on request starts afresh when it is used again
  // Nothing that waits for a connection of this URL can be served any more: answer it now,
  // not when the last child is gone (a child may be stuck in a connect attempt).
  fail_parked(e, e.stop_reason);
  fail_waiters(e, e.stop_reason);
  drop_publishes(self, e, self->state.shutting_down ? drop_reason::stopped : drop_reason::closed);
  report_overloaded(self, e);
  for (uint32_t i = 0; i < e.slots.size(); ++i)
    apply(self, e, i, slot_event::close{});
  finish_close_if_done(self, e);
}

void shut_down(self_ptr self, caf::error reason) {
  auto& st = self->state;
  if (st.shutting_down)
    return;
  st.shutting_down = true;
  st.exit_reason = std::move(reason);
  if (st.urls.empty()) {
    self->quit(st.exit_reason);
    return;
  }
  // Every entry is closing before the first close can complete: the last one to complete quits.
  auto all = entries(self);
  for (auto* e : all) {
    e->closing = true;
    e->stop_reason = make_error(errc::service_stopped, "the connection service stopped", e->url);
  }
  for (auto* e : all)
    close_entry(self, *e, e->stop_reason);
}

void on_down(self_ptr self, caf::down_msg& msg) {
  auto& st = self->state;
  if (auto it = st.children.find(msg.source); it != st.children.end()) {
    auto ref = std::move(it->second);
    st.children.erase(it);
    ref.ledger->close(); // what its mailbox still held when it ended
    // A child that reported its failure (conn_down) is no news here: the slot ignores it.
    if (auto* e = find_entry(self, ref.key))
      child_ended(self, *e, ref.index, ref.generation, msg.reason);
    return;
  }
  // A watcher or a subscriber died: forget it and end its subscriptions.
  auto& ws = st.watchers;
  ws.erase(std::remove_if(ws.begin(), ws.end(),
                          [&](const caf::actor& w) { return w.address() == msg.source; }),
           ws.end());
  // The records hold the subscriber's handle, so a dead subscriber's address still yields it.
  if (auto gone = caf::actor_cast<caf::actor>(msg.source)) {
    for (auto& r : st.subscriptions.remove_subscriber(gone)) {
      if (auto* e = find_entry(self, r.url))
        unsubscribe_on_children(self, *e, r.id);
      else
        offer_retirement(self, r.url);
    }
  }
}

// -- status ---------------------------------------------------------------------------------------

url_status status_of(const url_entry& e) {
  auto& s = e.slots[0];
  url_status out;
  out.url = e.url;
  out.state = s.machine.state();
  out.generation = s.machine.generation();
  out.restarts = s.machine.restarts();
  out.parked = e.parked.size();
  out.active_scopes = e.active_scopes;
  out.last_error = s.machine.last_error();
  auto t = s.retired;
  t += s.current;
  out.in_msgs = t.in_msgs;
  out.in_bytes = t.in_bytes;
  out.out_msgs = t.out_msgs;
  out.out_bytes = t.out_bytes;
  out.reconnects = t.reconnects;
  out.pool.size = e.pool.size();
  out.pool.active = e.pool.active();
  out.pool.idle = e.pool.idle();
  out.pool.waiting = e.pool.waiting();
  out.pool.waits = e.pool.waits();
  out.pool.timeouts = e.pool.timeouts();
  out.pool.created = e.pool.started();
  out.pool.closed = e.pool_closed;
  out.pool.leaks = e.leaks;
  out.publishes.buffered = e.outbox.messages();
  out.publishes.buffered_bytes = e.outbox.bytes();
  out.publishes.replayed = e.outbox.replayed();
  for (size_t i = 0; i < drop_reason_count; ++i)
    out.publishes.dropped[i] = e.outbox.dropped(static_cast<drop_reason>(i));
  // Refused for credit, by senders' publishers and at the door alike.
  out.publishes.dropped[static_cast<size_t>(drop_reason::overloaded)] = e.credit->refused();
  return out;
}

} // namespace supervision

} // namespace natsvisor
