#include "supervisors/connection_supervisor.hpp"

#include <algorithm>

#include "caf/all.hpp"

#include "actors/connection_actor.hpp"
#include "base/replies.hpp"
#include "base/logging.hpp"
#include "config/url.hpp"
#include "nats/type_ids.hpp"
#include "nats/protocol.hpp"

namespace natsvisor {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

int64_t ms(caf::timespan t) {
  return duration_cast<milliseconds>(t).count();
}

// The one place where a connection actor's exit reason is sorted: bad input cannot be cured
// by restarting, everything else (refused, lost, closed by nats.c, crashed) can.
failure_kind classify(const caf::error& reason) {
  switch (code_of(reason)) {
    case errc::invalid_url:
    case errc::invalid_config: return failure_kind::permanent;
    default: return failure_kind::transient;
  }
}

std::string slot_name(const connection_slot& s) {
  return s.index == 0 ? std::string{"shared"} : "pool slot " + std::to_string(s.index);
}

connection_slot* slot_at(url_entry& e, uint32_t index) {
  if (index == 0)
    return &e.shared;
  return index <= e.pool.size() ? &e.pool[index - 1] : nullptr;
}

bool is_up(const connection_slot& s) {
  return s.state == connection_state::connected || s.state == connection_state::reconnecting;
}

void notify(supervisor_type* self, const url_entry& e, connection_slot& s, connection_state state,
            std::string detail = {}) {
  s.state = state;
  state_changed ev{e.url, state, s.generation, std::move(detail), s.index, caf::make_timestamp()};
  for (auto& w : self->state.watchers)
    self->send(w, ev);
}

void start_child(supervisor_type* self, url_entry& e, connection_slot& s) {
  ++s.generation;
  s.conn = {};
  s.js = {};
  s.js_problem.clear();
  s.closing = false;
  s.child = self->spawn<caf::detached>(connection_actor, e.key, s.generation,
                                       caf::actor_cast<caf::actor>(self), self->state.cfg);
  self->monitor(s.child);
  self->state.children[s.child.address()] = {e.key, s.index};
  if (s.index > 0)
    ++e.counters.created;
  notify(self, e, s, connection_state::connecting);
}

// Starts the shared connection when nothing runs it and nothing forbids it.
void ensure_shared(supervisor_type* self, url_entry& e) {
  auto& s = e.shared;
  if (!s.child && !s.closing && s.state == connection_state::closed)
    start_child(self, e, s);
}

std::shared_ptr<detail::release_guard> guard(std::function<void()> f) {
  return std::make_shared<detail::release_guard>(std::move(f));
}

// Answers one request for a shared connection that is up.
void answer(supervisor_type* self, url_entry& e, request_kind kind, caf::response_promise& rp,
            caf::message& forward) {
  auto& s = e.shared;
  auto scope_guard = [&] {
    ++e.active_scopes;
    auto sup = caf::actor_cast<caf::actor>(self);
    return guard([sup, key = e.key] { caf::anon_send(sup, scope_end_atom_v, key); });
  };
  switch (kind) {
    case request_kind::connection: rp.deliver(s.conn); break;
    case request_kind::connection_scope: rp.deliver(connection_scope{s.conn, scope_guard()}); break;
    case request_kind::jetstream:
    case request_kind::jetstream_scope:
      if (!s.js_problem.empty() || !s.js)
        detail::deliver_error(rp, make_error(errc::jetstream_unavailable, s.js_problem, e.url));
      else if (kind == request_kind::jetstream)
        rp.deliver(s.js);
      else
        rp.deliver(jetstream_scope{s.js, scope_guard()});
      break;
    case request_kind::health:
      // Only the connection actor owns the connection: it does the round trip.
      rp.delegate(s.child, health_atom_v);
      break;
    case request_kind::forward:
      // The message path: served by the connection actor, which replies to the requester.
      rp.delegate(s.child, std::move(forward));
      break;
  }
}

// The answer for a request that cannot be served: an error, or an unhealthy result.
void refuse(const url_entry& e, request_kind kind, caf::response_promise& rp, caf::error err) {
  if (kind == request_kind::health) {
    health_result r;
    r.url = e.url;
    r.generation = e.shared.generation;
    r.detail = describe(err);
    rp.deliver(std::move(r));
  } else {
    detail::deliver_error(rp, std::move(err));
  }
}

void fail_parked(url_entry& e, const caf::error& err) {
  auto parked = std::move(e.parked);
  e.parked.clear();
  for (auto& p : parked)
    refuse(e, p.kind, p.promise, err);
}

caf::error gave_up_error(const url_entry& e, const connection_slot& s) {
  return make_error(errc::gave_up, s.give_up_reason + "; last error: " + s.last_error, e.url);
}

// A parked request or lease waiter by its id; end() once it was answered.
template <class Container>
auto find_id(Container& xs, uint64_t id) {
  return std::find_if(xs.begin(), xs.end(), [id](const auto& x) { return x.id == id; });
}

// The entry of a timer or release message; null once the URL is gone.
url_entry* find_entry(supervisor_type* self, const std::string& key) {
  auto it = self->state.urls.find(key);
  return it == self->state.urls.end() ? nullptr : &it->second;
}

// Finds or creates the entry of `url` (empty: the default URL). Creating starts nothing.
caf::expected<url_entry*> entry_for(supervisor_type* self, const std::string& url) {
  auto& st = self->state;
  const std::string& key = url.empty() ? st.cfg->nats_url : url;
  if (auto it = st.urls.find(key); it != st.urls.end())
    return &it->second;
  // Validate before anything exists, so bad input never creates a connection.
  if (auto servers = parse_servers(key); !servers)
    return servers.error();
  auto& e = st.urls[key];
  e.key = key;
  e.url = redact(key);
  return &e;
}

// Serves a request on the URL's shared connection, or parks it until that is up.
caf::response_promise serve(supervisor_type* self, request_kind kind, const std::string& url,
                            caf::message forward = {}) {
  auto rp = self->make_response_promise();
  auto entry = entry_for(self, url);
  if (!entry) {
    detail::deliver_error(rp, std::move(entry.error()));
    return rp;
  }
  auto& e = **entry;
  auto& s = e.shared;
  if (e.closing || s.closing) {
    refuse(e, kind, rp, make_error(errc::connection_closed, "closing on request", e.url));
    return rp;
  }
  ensure_shared(self, e);
  if (is_up(s)) {
    answer(self, e, kind, rp, forward);
  } else if (s.state == connection_state::gave_up) {
    refuse(e, kind, rp, gave_up_error(e, s));
  } else {
    auto id = ++self->state.next_id;
    e.parked.push_back(parked_request{id, kind, rp, std::move(forward)});
    self->delayed_send(self, self->state.cfg->request_timeout, park_timeout_atom_v, e.key, id);
  }
  return rp;
}

// --- the lease pool -------------------------------------------------------------------------

// Every pooled connection the pool may have exists and was given up on: nothing will serve a
// lease until reset(url).
bool all_pool_gave_up(supervisor_type* self, const url_entry& e) {
  if (e.pool.size() < static_cast<size_t>(self->state.cfg->connection_pool_size))
    return false;
  return std::all_of(e.pool.begin(), e.pool.end(),
                     [](const connection_slot& s) { return s.state == connection_state::gave_up; });
}

connection_slot* idle_slot(url_entry& e) {
  // Known state only: a slot whose actor failed is not handed out until it is connected again.
  for (auto& s : e.pool)
    if (s.child && s.state == connection_state::connected && s.lease == 0)
      return &s;
  return nullptr;
}

void grant(supervisor_type* self, url_entry& e, connection_slot& s, lease_waiter& w) {
  auto id = ++self->state.next_id;
  s.lease = id;
  s.holder = w.holder;
  s.leased_at = caf::make_timestamp();
  auto sup = caf::actor_cast<caf::actor>(self);
  auto release = [sup, key = e.key, index = s.index, id] {
    caf::anon_send(sup, lease_end_atom_v, key, index, id);
  };
  w.promise.deliver(lease{s.conn, id, guard(release)});
  self->delayed_send(self, self->state.cfg->leak_threshold, leak_check_atom_v, e.key, s.index, id);
}

// Starts pooled connections for waiters that no starting slot will serve, up to the pool size.
void grow_pool(supervisor_type* self, url_entry& e) {
  if (e.closing)
    return;
  size_t starting = 0;
  for (auto& s : e.pool)
    if (s.lease == 0
        && (s.state == connection_state::connecting || s.state == connection_state::restarting))
      ++starting;
  while (e.waiters.size() > starting) {
    auto stopped = std::find_if(e.pool.begin(), e.pool.end(), [](const connection_slot& s) {
      return !s.child && s.state == connection_state::closed;
    });
    if (stopped != e.pool.end()) {
      start_child(self, e, *stopped);
    } else if (e.pool.size() < static_cast<size_t>(self->state.cfg->connection_pool_size)) {
      e.pool.emplace_back();
      e.pool.back().index = static_cast<uint32_t>(e.pool.size());
      start_child(self, e, e.pool.back());
    } else {
      return;
    }
    ++starting;
  }
}

// Hands idle connections to waiters in FIFO order, then grows the pool for the rest.
void dispatch(supervisor_type* self, url_entry& e) {
  while (!e.waiters.empty()) {
    auto* s = idle_slot(e);
    if (!s)
      break;
    auto w = std::move(e.waiters.front());
    e.waiters.pop_front();
    grant(self, e, *s, w);
  }
  grow_pool(self, e);
}

caf::response_promise serve_lease(supervisor_type* self, const std::string& url,
                                  caf::timespan timeout) {
  auto rp = self->make_response_promise();
  auto entry = entry_for(self, url);
  if (!entry) {
    detail::deliver_error(rp, std::move(entry.error()));
    return rp;
  }
  auto& e = **entry;
  if (e.closing) {
    detail::deliver_error(rp, make_error(errc::connection_closed, "closing on request", e.url));
    return rp;
  }
  if (all_pool_gave_up(self, e)) {
    detail::deliver_error(rp, make_error(errc::gave_up,
                                         "every pooled connection was given up on; last error: "
                                           + e.pool.back().last_error,
                                         e.url));
    return rp;
  }
  lease_waiter w;
  w.id = ++self->state.next_id;
  w.promise = rp;
  if (auto sender = self->current_sender())
    w.holder = "actor " + std::to_string(sender->id());
  if (auto* s = idle_slot(e); s && e.waiters.empty()) {
    grant(self, e, *s, w);
    return rp;
  }
  ++e.counters.waits;
  auto deadline = timeout > caf::timespan{0} ? timeout : self->state.cfg->lease_timeout;
  self->delayed_send(self, deadline, lease_to_atom_v, e.key, w.id);
  e.waiters.push_back(std::move(w));
  dispatch(self, e);
  return rp;
}

// --- failures and restarts ------------------------------------------------------------------

void shut_down(supervisor_type* self, const caf::error& reason);

void fail_waiters(url_entry& e, const caf::error& err) {
  auto waiters = std::move(e.waiters);
  e.waiters.clear();
  for (auto& w : waiters)
    detail::deliver_error(w.promise, err);
}

void finish_close(url_entry& e) {
  bool running = e.shared.child != nullptr;
  for (auto& s : e.pool)
    running = running || s.child != nullptr;
  if (running)
    return;
  e.closing = false;
  auto callbacks = std::move(e.on_closed);
  e.on_closed.clear();
  for (auto& f : callbacks)
    f();
}

// Closes every connection of the URL; `done` runs once all of them have stopped.
void close_entry(supervisor_type* self, url_entry& e, std::function<void()> done) {
  e.closing = true;
  fail_waiters(e, make_error(errc::connection_closed, "closed on request", e.url));
  auto close = [&](connection_slot& s) {
    if (s.child) {
      s.closing = true;
      self->send_exit(s.child, caf::exit_reason::user_shutdown);
    } else if (s.state != connection_state::closed) {
      // Restarting or given up: no connection exists, so closing cancels the restart.
      notify(self, e, s, connection_state::closed, "closed on request");
    }
  };
  close(e.shared);
  for (auto& s : e.pool)
    close(s);
  if (!e.shared.child)
    fail_parked(e, make_error(errc::connection_closed, "closed on request", e.url));
  e.on_closed.push_back(std::move(done));
  finish_close(e);
}

void on_child_down(supervisor_type* self, url_entry& e, connection_slot& s,
                   const caf::error& reason) {
  auto& st = self->state;
  // The closed connection still knows its counters: keep them before letting it go.
  if (s.conn && st.stats != nullptr && natsConnection_GetStats(s.conn.get(), st.stats) == NATS_OK) {
    uint64_t in_msgs = 0, in_bytes = 0, out_msgs = 0, out_bytes = 0, reconnects = 0;
    natsStatistics_GetCounts(st.stats, &in_msgs, &in_bytes, &out_msgs, &out_bytes, &reconnects);
    s.retired.in_msgs += in_msgs;
    s.retired.in_bytes += in_bytes;
    s.retired.out_msgs += out_msgs;
    s.retired.out_bytes += out_bytes;
    s.retired.reconnects += reconnects;
  }
  s.child = nullptr;
  s.conn = {};
  s.js = {};
  if (s.index > 0)
    ++e.counters.closed;
  if (s.closing) {
    s.closing = false;
    log().info("closed {} ({}) on request (generation {})", e.url, slot_name(s), s.generation);
    notify(self, e, s, connection_state::closed, "closed on request");
    if (s.index == 0)
      fail_parked(e, make_error(errc::connection_closed, "closed on request", e.url));
    finish_close(e);
    return;
  }
  s.last_error = describe(reason, false);
  auto now = steady_clock::now();
  auto draw = std::uniform_real_distribution<double>{0.0, 1.0}(st.rng);
  auto d = decide(st.cfg->policy, s.history, classify(reason), s.last_error, now, draw);
  if (auto restart = std::get_if<decision::restart_after>(&d)) {
    s.history.record_restart(now, st.cfg->policy);
    log().warn("connection to {} ({}) failed (generation {}): {}; restart {}/{} in {} ms", e.url,
               slot_name(s), s.generation, s.last_error, restart->attempt,
               st.cfg->policy.max_attempts, ms(restart->delay));
    notify(self, e, s, connection_state::restarting,
           "restart " + std::to_string(restart->attempt) + " in "
             + std::to_string(ms(restart->delay)) + " ms after: " + s.last_error);
    self->delayed_send(self, restart->delay, restart_atom_v, e.key, s.index, s.generation);
    return;
  }
  s.give_up_reason = std::get<decision::give_up>(d).reason;
  log().error("giving up on {} ({}): {}; last error: {}", e.url, slot_name(s), s.give_up_reason,
              s.last_error);
  notify(self, e, s, connection_state::gave_up, s.give_up_reason);
  auto err = gave_up_error(e, s);
  if (s.index == 0)
    fail_parked(e, err);
  if (s.index > 0 && all_pool_gave_up(self, e))
    fail_waiters(e, err);
  if (st.cfg->escalate_on_give_up)
    shut_down(self, err); // answers everything still waiting, then exits with the error
}

void shut_down(supervisor_type* self, const caf::error& reason) {
  for (auto& [key, e] : self->state.urls) {
    auto err = make_error(errc::service_stopped, "the connection service stopped", e.url);
    fail_parked(e, err);
    fail_waiters(e, err);
    auto callbacks = std::move(e.on_closed);
    e.on_closed.clear();
    for (auto& f : callbacks)
      f();
  }
  self->quit(reason);
}

// The entry and slot whose current connection actor sent this message; null when stale.
std::pair<url_entry*, connection_slot*> slot_of_sender(supervisor_type* self, uint64_t generation) {
  auto sender = self->current_sender();
  if (!sender)
    return {nullptr, nullptr};
  auto child = self->state.children.find(sender->address());
  if (child == self->state.children.end())
    return {nullptr, nullptr};
  auto it = self->state.urls.find(child->second.first);
  if (it == self->state.urls.end())
    return {nullptr, nullptr};
  auto* s = slot_at(it->second, child->second.second);
  if (!s || s->generation != generation)
    return {nullptr, nullptr};
  return {&it->second, s};
}

void on_up(supervisor_type* self, url_entry& e, connection_slot& s) {
  if (s.index > 0) {
    dispatch(self, e);
    return;
  }
  // A fresh shared connection: re-subscribe everything the old one had, then serve the parked.
  for (auto& [id, sub] : e.subscriptions)
    self->request(s.child, caf::infinite, sub_atom_v, id, sub.subject, sub.queue, sub.subscriber)
      .then([](uint64_t) { /* nop: subscribed again */ },
            [url = e.url, subject = sub.subject](caf::error& err) {
              log().error("could not subscribe {} again on {}: {}", subject, url, describe(err));
            });
  auto parked = std::move(e.parked);
  e.parked.clear();
  for (auto& p : parked)
    answer(self, e, p.kind, p.promise, p.forward);
}

url_status status_of(supervisor_type* self, const url_entry& e) {
  auto& s = e.shared;
  url_status out;
  out.url = e.url;
  out.state = s.state;
  out.generation = s.generation;
  out.restarts = s.restarts;
  out.parked = e.parked.size();
  out.active_scopes = e.active_scopes;
  out.subscriptions = e.subscriptions.size();
  out.last_error = s.last_error;
  auto stats = self->state.stats;
  if (s.conn && stats != nullptr && natsConnection_GetStats(s.conn.get(), stats) == NATS_OK)
    natsStatistics_GetCounts(stats, &out.in_msgs, &out.in_bytes, &out.out_msgs, &out.out_bytes,
                             &out.reconnects);
  out.in_msgs += s.retired.in_msgs;
  out.in_bytes += s.retired.in_bytes;
  out.out_msgs += s.retired.out_msgs;
  out.out_bytes += s.retired.out_bytes;
  out.reconnects += s.retired.reconnects;
  out.pool = e.counters;
  out.pool.waiting = e.waiters.size();
  for (auto& p : e.pool) {
    if (p.child)
      ++out.pool.size;
    if (p.lease != 0)
      ++out.pool.active;
    else if (p.child && p.state == connection_state::connected)
      ++out.pool.idle;
  }
  return out;
}

// Rejects a subject before anything is sent, so a bad one never reaches the server.
caf::error check_subject(supervisor_type* self, const std::string& url, const std::string& subject,
                         bool wildcards) {
  if (valid_subject(subject, wildcards))
    return caf::none;
  auto& key = url.empty() ? self->state.cfg->nats_url : url;
  return make_error(errc::invalid_subject, "invalid subject '" + subject + "'", redact(key));
}

template <class... Ts>
caf::response_promise forward(supervisor_type* self, const std::string& url, Ts&&... xs) {
  return serve(self, request_kind::forward, url, caf::make_message(std::forward<Ts>(xs)...));
}

caf::response_promise refused(supervisor_type* self, caf::error err) {
  auto rp = self->make_response_promise();
  detail::deliver_error(rp, std::move(err));
  return rp;
}

} // namespace

supervisor_state::~supervisor_state() {
  natsStatistics_Destroy(stats);
}

caf::behavior connection_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  natsStatistics_Create(&st.stats);
  detail::tolerate_strays(self, "connection supervisor");
  // An exit request (the service stopping) answers everything still waiting before quitting.
  self->set_exit_handler([self](caf::exit_msg& msg) { shut_down(self, msg.reason); });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (auto it = st.children.find(msg.source); it != st.children.end()) {
      auto [key, index] = it->second;
      st.children.erase(it);
      auto e = st.urls.find(key);
      if (e == st.urls.end())
        return;
      // A stale generation (already replaced) has nothing left to decide.
      if (auto* s = slot_at(e->second, index); s && s->child.address() == msg.source)
        on_child_down(self, e->second, *s, msg.reason);
      return;
    }
    // A watcher or a subscriber died: forget it, and drop its subscriptions.
    auto& ws = st.watchers;
    ws.erase(std::remove_if(ws.begin(), ws.end(),
                            [&](const caf::actor& w) { return w.address() == msg.source; }),
             ws.end());
    for (auto& [key, e] : st.urls)
      for (auto it = e.subscriptions.begin(); it != e.subscriptions.end();) {
        if (it->second.subscriber.address() == msg.source) {
          if (e.shared.child)
            self->send(e.shared.child, unsub_atom_v, it->first);
          it = e.subscriptions.erase(it);
        } else {
          ++it;
        }
      }
  });
  for (auto& url : st.cfg->urls) {
    if (auto e = entry_for(self, url))
      ensure_shared(self, **e);
    else
      log().error("cannot supervise {}: {}", redact(url), describe(e.error()));
  }
  return {
    // -- handles, scopes, health --------------------------------------------------------------
    [self](get_conn_atom, const std::string& url) {
      return serve(self, request_kind::connection, url);
    },
    [self](get_js_atom, const std::string& url) {
      return serve(self, request_kind::jetstream, url);
    },
    [self](scope_atom, const std::string& url) {
      return serve(self, request_kind::connection_scope, url);
    },
    [self](js_scope_atom, const std::string& url) {
      return serve(self, request_kind::jetstream_scope, url);
    },
    [self](health_atom, const std::string& url) { return serve(self, request_kind::health, url); },
    [self](scope_end_atom, const std::string& key) {
      if (auto* e = find_entry(self, key); e && e->active_scopes > 0)
        --e->active_scopes;
    },
    // -- leases ------------------------------------------------------------------------------
    [self](lease_atom, const std::string& url, caf::timespan timeout) {
      return serve_lease(self, url, timeout);
    },
    [self](lease_end_atom, const std::string& key, uint32_t index, uint64_t id) {
      auto* e = find_entry(self, key);
      auto* s = e ? slot_at(*e, index) : nullptr;
      if (!s || s->lease != id)
        return; // returned twice, or a stale loan: harmless
      s->lease = 0;
      s->holder.clear();
      dispatch(self, *e);
    },
    [self](lease_to_atom, const std::string& key, uint64_t waiter) {
      auto* found = find_entry(self, key);
      if (!found)
        return;
      auto& e = *found;
      auto w = find_id(e.waiters, waiter);
      if (w == e.waiters.end())
        return;
      auto rp = std::move(w->promise);
      e.waiters.erase(w);
      ++e.counters.timeouts;
      auto leased = std::count_if(e.pool.begin(), e.pool.end(),
                                  [](const connection_slot& s) { return s.lease != 0; });
      detail::deliver_error(
        rp,
        make_error(errc::pool_exhausted,
                   "no pooled connection became free in time (" + std::to_string(leased) + " of "
                     + std::to_string(self->state.cfg->connection_pool_size) + " leased)",
                   e.url));
    },
    [self](leak_check_atom, const std::string& key, uint32_t index, uint64_t id) {
      auto* found = find_entry(self, key);
      if (!found)
        return;
      auto& e = *found;
      auto* s = slot_at(e, index);
      if (!s || s->lease != id)
        return;
      ++e.counters.leaks;
      auto held = caf::make_timestamp() - s->leased_at;
      log().warn("lease {} of {} held by {} for {} ms (leak_threshold {} ms)", id, e.url, s->holder,
                 ms(held), ms(self->state.cfg->leak_threshold));
      lease_leaked ev{e.url, id, s->holder, held};
      for (auto& w : self->state.watchers)
        self->send(w, ev);
    },
    // -- the message path --------------------------------------------------------------------
    [self](pub_atom, const std::string& url, outgoing& m) {
      if (auto err = check_subject(self, url, m.subject, false))
        return refused(self, std::move(err));
      return forward(self, url, pub_atom_v, std::move(m));
    },
    [self](pub_atom, const std::string& url, std::vector<outgoing>& batch) {
      for (auto& m : batch)
        if (auto err = check_subject(self, url, m.subject, false))
          return refused(self, std::move(err));
      return forward(self, url, pub_atom_v, std::move(batch));
    },
    [self](pub_atom, const std::string& url, packed_batch& batch) {
      if (auto err = check_subject(self, url, batch.subject, false))
        return refused(self, std::move(err));
      return forward(self, url, pub_atom_v, std::move(batch));
    },
    [self](req_atom, const std::string& url, outgoing& m, caf::timespan timeout) {
      if (auto err = check_subject(self, url, m.subject, false))
        return refused(self, std::move(err));
      return forward(self, url, req_atom_v, std::move(m), timeout);
    },
    [self](js_pub_atom, const std::string& url, outgoing& m, caf::timespan timeout) {
      if (auto err = check_subject(self, url, m.subject, false))
        return refused(self, std::move(err));
      return forward(self, url, js_pub_atom_v, std::move(m), timeout);
    },
    [self](sub_atom, const std::string& url, const std::string& subject, const std::string& queue,
           const caf::actor& subscriber) {
      if (auto err = check_subject(self, url, subject, true))
        return refused(self, std::move(err));
      if (!queue.empty() && !valid_subject(queue, false)) // a queue name is one plain token
        return refused(self,
                       make_error(errc::invalid_subject, "invalid queue group '" + queue + "'",
                                  redact(url.empty() ? self->state.cfg->nats_url : url)));
      if (!subscriber)
        return refused(self, make_error(errc::nats_error, "no subscriber actor", redact(url)));
      auto entry = entry_for(self, url);
      if (!entry)
        return refused(self, entry.error());
      auto& e = **entry;
      auto id = ++self->state.next_id;
      e.subscriptions.emplace(id, subscription_record{id, subject, queue, subscriber});
      self->monitor(subscriber);
      ensure_shared(self, e);
      auto rp = self->make_response_promise();
      if (!is_up(e.shared)) {
        rp.deliver(id); // kept: subscribed as soon as the connection is up
        return rp;
      }
      self->request(e.shared.child, caf::infinite, sub_atom_v, id, subject, queue, subscriber)
        .then([rp](uint64_t sid) mutable { rp.deliver(sid); },
              [self, rp, key = e.key, id](caf::error& err) mutable {
                // Refused: keep no record, or every restart would subscribe it again.
                if (auto* found = find_entry(self, key))
                  found->subscriptions.erase(id);
                detail::deliver_error(rp, std::move(err));
              });
      return rp;
    },
    [self](unsub_atom, const std::string& url, uint64_t id) {
      auto& st = self->state;
      auto it = st.urls.find(url.empty() ? st.cfg->nats_url : url);
      if (it == st.urls.end() || it->second.subscriptions.erase(id) == 0)
        return;
      if (auto& child = it->second.shared.child)
        self->send(child, unsub_atom_v, id);
    },
    // -- lifecycle ---------------------------------------------------------------------------
    [self](close_conn_atom, const std::string& url) {
      auto rp = self->make_response_promise();
      auto& st = self->state;
      auto it = st.urls.find(url.empty() ? st.cfg->nats_url : url);
      if (it == st.urls.end())
        rp.deliver(caf::unit); // nothing open: closing is already done
      else
        close_entry(self, it->second, [rp]() mutable { rp.deliver(caf::unit); });
      return rp;
    },
    // -- the service lifecycle (see services/service_manager.hpp) ----------------------------
    [self](svc_init_atom, const caf::actor&) {
      // nop: connections start on demand, and configured URLs started with the actor
      return caf::unit;
    },
    [self](svc_clean_atom) {
      // Answered once every connection of every URL is closed.
      auto rp = self->make_response_promise();
      auto left = std::make_shared<size_t>(self->state.urls.size());
      if (*left == 0)
        rp.deliver(caf::unit);
      for (auto& [key, e] : self->state.urls)
        close_entry(self, e, [rp, left]() mutable {
          if (--*left == 0)
            rp.deliver(caf::unit);
        });
      return rp;
    },
    [self](reset_atom, const std::string& url) -> caf::result<caf::unit_t> {
      auto entry = entry_for(self, url);
      if (!entry)
        return entry.error();
      auto& e = **entry;
      auto revive = [&](connection_slot& s) {
        s.history.reset();
        if (s.state == connection_state::gave_up) {
          log().info("reviving {} ({}) on request", e.url, slot_name(s));
          s.give_up_reason.clear();
          start_child(self, e, s);
        }
      };
      revive(e.shared);
      for (auto& s : e.pool)
        revive(s);
      ensure_shared(self, e);
      return caf::unit;
    },
    [self](status_atom) {
      status_report report;
      for (auto& [key, e] : self->state.urls)
        report.push_back(status_of(self, e));
      return report;
    },
    [self](watch_atom, const caf::actor& watcher) {
      if (!watcher)
        return;
      self->monitor(watcher);
      self->state.watchers.push_back(watcher);
    },
    [self](unwatch_atom, const caf::actor& watcher) {
      auto& ws = self->state.watchers;
      ws.erase(std::remove(ws.begin(), ws.end(), watcher), ws.end());
    },
    // -- from connection actors and timers ---------------------------------------------------
    [self](conn_up_atom, uint64_t generation, connection_handle& conn, jetstream_handle& js,
           std::string& js_problem) {
      auto [e, s] = slot_of_sender(self, generation);
      if (!e || s->closing)
        return;
      s->conn = std::move(conn);
      s->js = std::move(js);
      s->js_problem = std::move(js_problem);
      s->history.record_up(steady_clock::now());
      notify(self, *e, *s, connection_state::connected,
             s->js_problem.empty() ? std::string{} : "JetStream unavailable: " + s->js_problem);
      on_up(self, *e, *s);
    },
    [self](conn_event_atom, uint64_t generation, connection_state state, std::string& detail) {
      auto [e, s] = slot_of_sender(self, generation);
      if (!e || !is_up(*s))
        return;
      // Only time really connected counts toward stable_period: a connection that spends its
      // life in nats.c's reconnect loop must not end its failure episode.
      if (state == connection_state::reconnecting)
        s->history.up_since.reset();
      else if (state == connection_state::connected && !s->history.up_since)
        s->history.record_up(steady_clock::now());
      notify(self, *e, *s, state, std::move(detail));
      if (s->index > 0 && state == connection_state::connected)
        dispatch(self, *e);
    },
    [self](restart_atom, const std::string& key, uint32_t index, uint64_t generation) {
      auto* e = find_entry(self, key);
      auto* s = e ? slot_at(*e, index) : nullptr;
      // Closed or revived in the meantime: this timer is stale.
      if (!s || s->state != connection_state::restarting || s->generation != generation)
        return;
      ++s->restarts;
      start_child(self, *e, *s);
    },
    [self](park_timeout_atom, const std::string& key, uint64_t id) {
      auto* found = find_entry(self, key);
      if (!found)
        return;
      auto& e = *found;
      auto p = find_id(e.parked, id);
      if (p == e.parked.end())
        return;
      auto detail = "no connection within request_timeout ("
                    + std::to_string(ms(self->state.cfg->request_timeout)) + " ms), state "
                    + to_string(e.shared.state);
      if (!e.shared.last_error.empty())
        detail += ", last error: " + e.shared.last_error;
      auto req = std::move(*p);
      e.parked.erase(p);
      refuse(e, req.kind, req.promise, make_error(errc::timeout, detail, e.url));
    },
  };
}

} // namespace natsvisor
