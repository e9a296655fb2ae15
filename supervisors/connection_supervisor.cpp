#include "supervisors/connection_supervisor.hpp"

#include <algorithm>

#include "caf/all.hpp"

#include "actors/connection_actor.hpp"
#include "api/logging.hpp"
#include "config/url.hpp"
#include "messages/messages.hpp"

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
    case errc::invalid_config:
      return failure_kind::permanent;
    default:
      return failure_kind::transient;
  }
}

void notify(supervisor_type* self, url_entry& e, connection_state s, std::string detail = {}) {
  e.state = s;
  state_changed ev{e.url, s, e.generation, std::move(detail)};
  for (auto& w : self->state.watchers)
    self->send(w, ev);
}

void start_child(supervisor_type* self, url_entry& e) {
  ++e.generation;
  e.conn = {};
  e.js = {};
  e.js_problem.clear();
  e.closing = false;
  e.child = self->spawn<caf::detached>(connection_actor, e.key, e.generation,
                                       caf::actor_cast<caf::actor>(self), self->state.cfg);
  self->monitor(e.child);
  self->state.children[e.child.address()] = e.key;
  notify(self, e, connection_state::connecting);
}

bool is_up(const url_entry& e) {
  return e.state == connection_state::connected || e.state == connection_state::reconnecting;
}

// Answers one request for a connection that is up.
void answer(supervisor_type* self, url_entry& e, request_kind kind, caf::response_promise& rp) {
  auto guard = [&] {
    ++e.active_scopes;
    return std::make_shared<detail::scope_guard>(caf::actor_cast<caf::actor>(self), e.key);
  };
  switch (kind) {
    case request_kind::connection:
      rp.deliver(e.conn);
      break;
    case request_kind::connection_scope:
      rp.deliver(connection_scope{e.conn, guard()});
      break;
    case request_kind::jetstream:
    case request_kind::jetstream_scope:
      if (!e.js_problem.empty() || !e.js)
        rp.deliver(make_error(errc::jetstream_unavailable, e.js_problem, e.url));
      else if (kind == request_kind::jetstream)
        rp.deliver(e.js);
      else
        rp.deliver(jetstream_scope{e.js, guard()});
      break;
    case request_kind::health:
      // Only the connection actor owns the connection: it does the round trip.
      rp.delegate(e.child, health_atom_v);
      break;
  }
}

// The answer for a request that cannot be served: an error, or an unhealthy result.
void refuse(url_entry& e, request_kind kind, caf::response_promise& rp, caf::error err) {
  if (kind == request_kind::health) {
    health_result r;
    r.url = e.url;
    r.generation = e.generation;
    r.detail = describe(err);
    rp.deliver(std::move(r));
  } else {
    rp.deliver(std::move(err));
  }
}

void fail_parked(url_entry& e, const caf::error& err) {
  auto parked = std::move(e.parked);
  e.parked.clear();
  for (auto& p : parked)
    refuse(e, p.kind, p.promise, err);
}

caf::error gave_up_error(const url_entry& e) {
  return make_error(errc::gave_up, e.give_up_reason + "; last error: " + e.last_error, e.url);
}

// Finds or creates the entry of `url` (empty: the default URL); creating spawns its actor.
caf::expected<url_entry*> entry_for(supervisor_type* self, const std::string& url) {
  auto& st = self->state;
  const std::string& key = url.empty() ? st.cfg->nats_url : url;
  if (auto it = st.urls.find(key); it != st.urls.end())
    return &it->second;
  // Validate before anything is spawned, so bad input never creates a connection.
  if (auto servers = parse_servers(key); !servers)
    return servers.error();
  auto& e = st.urls[key];
  e.key = key;
  e.url = redact(key);
  start_child(self, e);
  return &e;
}

caf::response_promise serve(supervisor_type* self, request_kind kind, const std::string& url) {
  auto rp = self->make_response_promise();
  auto entry = entry_for(self, url);
  if (!entry) {
    rp.deliver(entry.error());
    return rp;
  }
  auto& e = **entry;
  if (e.state == connection_state::closed && !e.closing)
    start_child(self, e);  // closed on request earlier: a new request opens it again
  if (is_up(e)) {
    answer(self, e, kind, rp);
  } else if (e.state == connection_state::gave_up) {
    refuse(e, kind, rp, gave_up_error(e));
  } else if (e.closing) {
    refuse(e, kind, rp, make_error(errc::connection_closed, "closing on request", e.url));
  } else {
    auto id = ++self->state.next_park_id;
    e.parked.push_back(parked_request{id, kind, rp});
    self->delayed_send(self, self->state.cfg->request_timeout, park_timeout_atom_v, e.key, id);
  }
  return rp;
}

void on_child_down(supervisor_type* self, url_entry& e, const caf::error& reason) {
  auto& st = self->state;
  e.child = nullptr;
  e.conn = {};
  e.js = {};
  if (e.closing) {
    e.closing = false;
    log().info("closed {} on request (generation {})", e.url, e.generation);
    notify(self, e, connection_state::closed, "closed on request");
    fail_parked(e, make_error(errc::connection_closed, "closed on request", e.url));
    for (auto& rp : e.close_waiters)
      rp.deliver(caf::unit);
    e.close_waiters.clear();
    return;
  }
  e.last_error = describe(reason);
  auto now = caf::make_timestamp();
  auto draw = std::uniform_real_distribution<double>{0.0, 1.0}(st.rng);
  auto d = decide(st.cfg->policy, e.history, classify(reason), e.last_error, now, draw);
  if (auto restart = std::get_if<decision::restart_after>(&d)) {
    e.history.record_restart(now, st.cfg->policy);
    log().warn("connection to {} failed (generation {}): {}; restart {}/{} in {} ms", e.url,
               e.generation, e.last_error, restart->attempt, st.cfg->policy.max_attempts,
               ms(restart->delay));
    notify(self, e, connection_state::restarting,
           "restart " + std::to_string(restart->attempt) + " in " + std::to_string(ms(restart->delay))
             + " ms after: " + e.last_error);
    self->delayed_send(self, restart->delay, restart_atom_v, e.key, e.generation);
    return;
  }
  e.give_up_reason = std::get<decision::give_up>(d).reason;
  log().error("giving up on {}: {}; last error: {}", e.url, e.give_up_reason, e.last_error);
  notify(self, e, connection_state::gave_up, e.give_up_reason);
  auto err = gave_up_error(e);
  fail_parked(e, err);
  if (st.cfg->escalate_on_give_up)
    self->quit(err);
}

void shut_down(supervisor_type* self, const caf::error& reason) {
  for (auto& [key, e] : self->state.urls) {
    fail_parked(e, make_error(errc::service_stopped, "the connection service stopped", e.url));
    for (auto& rp : e.close_waiters)
      rp.deliver(caf::unit);
    e.close_waiters.clear();
  }
  self->quit(reason);
}

// The entry whose current connection actor sent this message; null for a stale generation.
url_entry* entry_of_sender(supervisor_type* self, uint64_t generation) {
  auto sender = self->current_sender();
  if (!sender)
    return nullptr;
  auto child = self->state.children.find(sender->address());
  if (child == self->state.children.end())
    return nullptr;
  auto it = self->state.urls.find(child->second);
  if (it == self->state.urls.end() || it->second.generation != generation)
    return nullptr;
  return &it->second;
}

url_status status_of(supervisor_type* self, const url_entry& e) {
  url_status s;
  s.url = e.url;
  s.state = e.state;
  s.generation = e.generation;
  s.restarts = e.restarts;
  s.parked = e.parked.size();
  s.active_scopes = e.active_scopes;
  s.last_error = e.last_error;
  auto stats = self->state.stats;
  if (e.conn && stats != nullptr && natsConnection_GetStats(e.conn.get(), stats) == NATS_OK)
    natsStatistics_GetCounts(stats, &s.in_msgs, &s.in_bytes, &s.out_msgs, &s.out_bytes,
                             &s.reconnects);
  return s;
}

} // namespace

supervisor_state::~supervisor_state() {
  natsStatistics_Destroy(stats);
}

caf::behavior connection_supervisor(supervisor_type* self, std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  natsStatistics_Create(&st.stats);
  // An exit request (the service stopping) answers everything still waiting before quitting.
  self->set_exit_handler([self](caf::exit_msg& msg) { shut_down(self, msg.reason); });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (auto it = st.children.find(msg.source); it != st.children.end()) {
      auto key = it->second;
      st.children.erase(it);
      auto e = st.urls.find(key);
      // A stale generation (already replaced) has nothing left to decide.
      if (e != st.urls.end() && e->second.child.address() == msg.source)
        on_child_down(self, e->second, msg.reason);
      return;
    }
    auto& ws = st.watchers;
    ws.erase(std::remove_if(ws.begin(), ws.end(),
                            [&](const caf::actor& w) { return w.address() == msg.source; }),
             ws.end());
  });
  for (auto& url : st.cfg->urls)
    if (auto e = entry_for(self, url); !e)
      log().error("cannot supervise {}: {}", redact(url), describe(e.error()));
  return {
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
    [self](health_atom, const std::string& url) {
      return serve(self, request_kind::health, url);
    },
    [self](scope_end_atom, const std::string& key) {
      if (auto it = self->state.urls.find(key); it != self->state.urls.end()
                                                && it->second.active_scopes > 0)
        --it->second.active_scopes;
    },
    [self](close_conn_atom, const std::string& url) {
      auto rp = self->make_response_promise();
      auto& st = self->state;
      auto it = st.urls.find(url.empty() ? st.cfg->nats_url : url);
      if (it == st.urls.end()) {
        rp.deliver(caf::unit);  // nothing open: closing is already done
        return rp;
      }
      auto& e = it->second;
      if (e.child) {
        e.closing = true;
        e.close_waiters.push_back(rp);
        self->send_exit(e.child, caf::exit_reason::user_shutdown);
        return rp;
      }
      // Restarting or given up: no connection exists, so closing only cancels the restart.
      if (e.state != connection_state::closed) {
        notify(self, e, connection_state::closed, "closed on request");
        fail_parked(e, make_error(errc::connection_closed, "closed on request", e.url));
      }
      rp.deliver(caf::unit);
      return rp;
    },
    [self](reset_atom, const std::string& url) -> caf::result<caf::unit_t> {
      auto entry = entry_for(self, url);
      if (!entry)
        return entry.error();
      auto& e = **entry;
      e.history.reset();
      if (e.state == connection_state::gave_up) {
        log().info("reviving {} on request", e.url);
        e.give_up_reason.clear();
        start_child(self, e);
      }
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
    [self](conn_up_atom, uint64_t generation, connection_handle& conn, jetstream_handle& js,
           std::string& js_problem) {
      auto entry = entry_of_sender(self, generation);
      if (!entry || entry->closing)
        return;
      auto& e = *entry;
      e.conn = std::move(conn);
      e.js = std::move(js);
      e.js_problem = std::move(js_problem);
      e.history.record_up(caf::make_timestamp());
      notify(self, e, connection_state::connected,
             e.js_problem.empty() ? std::string{} : "JetStream unavailable: " + e.js_problem);
      auto parked = std::move(e.parked);
      e.parked.clear();
      for (auto& p : parked)
        answer(self, e, p.kind, p.promise);
    },
    [self](conn_event_atom, uint64_t generation, connection_state state, std::string& detail) {
      if (auto e = entry_of_sender(self, generation); e && is_up(*e))
        notify(self, *e, state, std::move(detail));
    },
    [self](restart_atom, const std::string& key, uint64_t generation) {
      auto it = self->state.urls.find(key);
      if (it == self->state.urls.end())
        return;
      auto& e = it->second;
      // Closed or revived in the meantime: this timer is stale.
      if (e.state != connection_state::restarting || e.generation != generation)
        return;
      ++e.restarts;
      start_child(self, e);
    },
    [self](park_timeout_atom, const std::string& key, uint64_t id) {
      auto it = self->state.urls.find(key);
      if (it == self->state.urls.end())
        return;
      auto& e = it->second;
      auto p = std::find_if(e.parked.begin(), e.parked.end(),
                            [&](const parked_request& x) { return x.id == id; });
      if (p == e.parked.end())
        return;
      auto detail = "no connection within request_timeout ("
                    + std::to_string(ms(self->state.cfg->request_timeout)) + " ms), state "
                    + to_string(e.state);
      if (!e.last_error.empty())
        detail += ", last error: " + e.last_error;
      auto req = std::move(*p);
      e.parked.erase(p);
      refuse(e, req.kind, req.promise, make_error(errc::timeout, detail, e.url));
    },
  };
}

} // namespace natsvisor
