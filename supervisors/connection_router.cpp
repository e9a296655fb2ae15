// The connection router: the actor users hold as "the connection service". It owns one URL
// supervisor (connection_supervisor.cpp) per URL in use and only routes: a message naming a URL
// is delegated to that URL's supervisor with its requester's promise, so the answer goes straight
// back to the requester; the few messages about every URL are sent to each and merged. Per
// message it does O(1) work (a hash lookup and a delegation), so a URL flooded with requests, or
// whose server hangs, keeps only its own supervisor busy. Its table is a pure core
// (supervisors/route_table.hpp), which also decides when a URL supervisor with nothing left ends.

#include <algorithm>
#include <map>

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "config/url.hpp"
#include "nats/type_ids.hpp"
#include "supervisors/connection_supervisor.hpp"
#include "supervisors/supervision.hpp"

namespace natsvisor {

namespace {

using router_ptr = router_type*;
using route = route_table<caf::actor, routed_message>::route;

// How long status waits for a URL supervisor before using the last report it gave: one busy
// with a flood must not hold up the status of the others (its own children get 100 ms).
constexpr auto status_deadline = std::chrono::milliseconds(250);

const std::string& key_of(router_ptr self, const std::string& url) {
  return url.empty() ? self->state.cfg->nats_url : url;
}

caf::error stopped_error(const std::string& key) {
  return make_error(errc::service_stopped, "the connection service stopped", redact(key));
}

void pass(route& r, routed_message m) {
  if (r.retiring)
    r.stash.push_back(std::move(m));
  else
    m.promise.delegate(r.actor, std::move(m.msg));
}

// The message-path credit of `key` (validated), made on first use; null past the bound of URLs
// in use (base/credit_table.hpp).
std::shared_ptr<publish_credit> credit_of(router_ptr self, const std::string& key) {
  return self->state.credits.of(key, supervision::credit_limit(*self->state.cfg));
}

caf::error too_many_urls(const std::string& key) {
  return make_error(errc::overloaded,
                    "the publish credits of " + std::to_string(max_url_credits)
                      + " URLs are in use (by their supervisors and publishers)",
                    redact(key));
}

// Spawns the supervisor of `key` (validated) and routes to it; null past the bound of URLs in
// use.
route* open_route(router_ptr self, const std::string& key, bool eager) {
  auto& st = self->state;
  auto credit = credit_of(self, key);
  if (!credit)
    return nullptr;
  auto opening = st.routes.prepare(key);
  url_start start{key,           caf::actor_cast<caf::actor>(self), opening.serial << route_serial_shift,
                  opening.from,  st.watchers,                       eager,
                  std::move(credit)};
  auto actor = self->spawn(url_supervisor, st.cfg, std::move(start));
  self->monitor(actor);
  return &st.routes.add(key, std::move(actor), opening.serial);
}

// Messages stashed for the URL supervisor of `key` that ended: to a fresh one.
void reopen(router_ptr self, const std::string& key, std::vector<routed_message>& stash) {
  if (stash.empty())
    return;
  auto* fresh = open_route(self, key, false);
  for (auto& m : stash)
    if (fresh)
      pass(*fresh, std::move(m));
    else
      detail::deliver_error(m.promise, too_many_urls(key));
}

// Ends the service once every URL supervisor has ended.
void quit_if_done(router_ptr self) {
  if (self->state.shutting_down && self->state.routes.empty())
    self->quit(self->state.exit_reason);
}

void shut_down(router_ptr self, caf::error reason) {
  auto& st = self->state;
  if (st.shutting_down)
    return;
  st.shutting_down = true;
  st.exit_reason = std::move(reason);
  // Each closes its URL and answers what waits there; messages stashed for a retiring one never
  // reach it now.
  st.routes.for_each([self](const std::string& key, route& r) {
    self->send_exit(r.actor, self->state.exit_reason);
    for (auto& m : std::exchange(r.stash, {}))
      detail::deliver_error(m.promise, stopped_error(key));
  });
  quit_if_done(self);
}

// The current message, for the URL supervisor of `url`: delegated, stashed while that one is
// asked to retire, or answered here when there is none and `spawn` is false (`absent`'s answer).
template <class Absent>
caf::response_promise route_current(router_ptr self, const std::string& url, bool spawn,
                                    Absent absent) {
  auto& st = self->state;
  auto& key = key_of(self, url);
  auto rp = self->make_response_promise();
  auto* r = st.routes.find(key);
  if (r == nullptr) {
    if (st.shutting_down) {
      detail::deliver_error(rp, stopped_error(key));
      return rp;
    }
    // Bad input never creates anything (and is checked once per URL, not per message).
    if (auto servers = parse_servers(key); !servers) {
      detail::deliver_error(rp, std::move(servers.error()));
      return rp;
    }
    if (!spawn) {
      absent(rp);
      return rp;
    }
    r = open_route(self, std::string{key}, false);
    if (r == nullptr) {
      detail::deliver_error(rp, too_many_urls(key));
      return rp;
    }
  }
  // `url` refers into the message: not used past this point.
  pass(*r, routed_message{rp, self->current_mailbox_element()->move_content_to_message()});
  return rp;
}

caf::response_promise to_url(router_ptr self, const std::string& url) {
  return route_current(self, url, true, [](caf::response_promise&) {});
}

// The URL supervisor of `key` offered to end: ask it, unless it has work or is asked already.
void consider_retirement(router_ptr self, const std::string& key) {
  auto& st = self->state;
  auto sender = caf::actor_cast<caf::actor>(self->current_sender());
  if (st.shutting_down || !st.routes.begin_retire(key, sender))
    return;
  self->request(sender, caf::infinite, retire_atom_v)
    .then(
      [self, key](std::vector<uint64_t>& reached) {
        auto& st = self->state;
        std::vector<routed_message> stash;
        if (reached.size() == 2) {
          stash = st.routes.retired(key, {reached[0], reached[1]});
          st.last_status.erase(key);
          if (st.shutting_down) {
            // It agreed before it saw the exit sent to it, and its route is gone now: its down
            // message finds none, so this may have been the route the router waited for.
            for (auto& m : stash) // none: stashes were answered when the shutdown began
              detail::deliver_error(m.promise, stopped_error(key));
            quit_if_done(self);
            return;
          }
          reopen(self, key, stash);
          return;
        }
        stash = st.routes.kept(key);
        if (auto* r = st.routes.find(key))
          for (auto& m : stash)
            pass(*r, std::move(m));
      },
      [](caf::error&) { /* it ended: its down message follows */ });
}

void on_down(router_ptr self, caf::down_msg& msg) {
  auto& st = self->state;
  auto actor = caf::actor_cast<caf::actor>(msg.source);
  if (auto gone = actor ? st.routes.ended(actor) : std::nullopt) {
    auto& [key, stash] = *gone;
    st.last_status.erase(key);
    if (st.shutting_down) {
      for (auto& m : stash)
        detail::deliver_error(m.promise, stopped_error(key));
      quit_if_done(self);
      return;
    }
    // A URL supervisor ends on its own only when it escalates (escalate_on_give_up) or fails:
    // the service as a whole ends with it, as a single supervisor did.
    if (msg.reason && msg.reason != caf::exit_reason::normal) {
      for (auto& m : stash)
        detail::deliver_error(m.promise, stopped_error(key));
      shut_down(self, msg.reason);
      return;
    }
    reopen(self, key, stash);
    return;
  }
  // A watcher died (each URL supervisor forgets it by itself).
  auto& ws = st.watchers;
  ws.erase(std::remove_if(ws.begin(), ws.end(),
                          [&](const caf::actor& w) { return w.address() == msg.source; }),
           ws.end());
}

} // namespace

caf::behavior connection_supervisor(router_type* self, std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  detail::tolerate_strays(self, "connection router");
  self->set_exit_handler([self](caf::exit_msg& msg) { shut_down(self, msg.reason); });
  self->set_down_handler([self](caf::down_msg& msg) { on_down(self, msg); });
  for (auto& url : st.cfg->urls) {
    auto& key = key_of(self, url);
    if (auto servers = parse_servers(key); !servers)
      log().error("cannot supervise {}: {}", redact(key), describe(servers.error()));
    else if (!st.routes.find(key) && !open_route(self, key, true))
      log().error("cannot supervise {}: {}", redact(key), describe(too_many_urls(key)));
  }
  return {
    // -- one URL each: delegated -----------------------------------------------------------------
    [self](get_conn_atom, const std::string& url) { return to_url(self, url); },
    [self](get_js_atom, const std::string& url) { return to_url(self, url); },
    [self](scope_atom, const std::string& url) { return to_url(self, url); },
    [self](js_scope_atom, const std::string& url) { return to_url(self, url); },
    [self](health_atom, const std::string& url) { return to_url(self, url); },
    [self](lease_atom, const std::string& url, caf::timespan) { return to_url(self, url); },
    [self](pub_atom, const std::string& url, const outgoing&) { return to_url(self, url); },
    [self](pub_atom, const std::string& url, const std::vector<outgoing>&) {
      return to_url(self, url);
    },
    [self](pub_atom, const std::string& url, const packed_batch&) { return to_url(self, url); },
    [self](pub_conf_atom, const std::string& url, const outgoing&, caf::timespan) {
      return to_url(self, url);
    },
    // The same, charged by the sender's publisher (base/publish_credit.hpp).
    [self](pub_atom, const std::string& url, const outgoing&, charged_atom) {
      return to_url(self, url);
    },
    [self](pub_atom, const std::string& url, const std::vector<outgoing>&, charged_atom) {
      return to_url(self, url);
    },
    [self](pub_atom, const std::string& url, const packed_batch&, charged_atom) {
      return to_url(self, url);
    },
    [self](pub_conf_atom, const std::string& url, const outgoing&, caf::timespan, charged_atom) {
      return to_url(self, url);
    },
    // The answer to an awaited publish whose publisher found the credit used up: at once, even
    // while the URL's supervisor is busy.
    [self](overloaded_atom, const std::string& url) -> caf::error {
      auto& key = key_of(self, url);
      if (auto servers = parse_servers(key); !servers) // makes no credit for a bad URL
        return std::move(servers.error());
      auto credit = credit_of(self, key);
      if (!credit)
        return too_many_urls(key);
      return make_error(errc::overloaded, supervision::overload_detail(*credit), redact(key));
    },
    // A publisher names the router, which outlives the URL's supervisors, and shares the credit
    // they are given (a bad URL is refused).
    [self](publisher_atom, const std::string& url) -> caf::result<publisher> {
      auto& key = key_of(self, url);
      if (auto servers = parse_servers(key); !servers)
        return std::move(servers.error());
      auto credit = credit_of(self, key);
      if (!credit)
        return too_many_urls(key);
      return publisher{caf::actor_cast<caf::actor>(self), url, std::move(credit)};
    },
    [self](req_atom, const std::string& url, const outgoing&, caf::timespan) {
      return to_url(self, url);
    },
    [self](js_pub_atom, const std::string& url, const outgoing&, caf::timespan) {
      return to_url(self, url);
    },
    [self](sub_atom, const std::string& url, const std::string&, const std::string&,
           const caf::actor&) { return to_url(self, url); },
    // Nothing to close or revive for a URL that has no supervisor.
    [self](close_conn_atom, const std::string& url) {
      return route_current(self, url, false, [](caf::response_promise& rp) { rp.deliver(caf::unit); });
    },
    [self](reset_atom, const std::string& url) {
      return route_current(self, url, false, [](caf::response_promise& rp) { rp.deliver(caf::unit); });
    },
    // An id carries its URL supervisor's serial: found whatever URL the caller names (the URL
    // named serves when that supervisor is gone: the id is unknown to any other).
    [self](unsub_atom, const std::string& url, uint64_t id) {
      auto& routes = self->state.routes;
      auto* key = routes.key_of_id(id);
      auto* r = routes.find(key != nullptr ? *key : key_of(self, url));
      if (r != nullptr)
        pass(*r, routed_message{self->make_response_promise(),
                                self->current_mailbox_element()->move_content_to_message()});
    },
    // -- every URL: sent to each, answers merged -------------------------------------------------
    [self](status_atom) {
      auto rp = self->make_response_promise();
      struct merge {
        std::map<std::string, status_report> by_key; // in key order, as one supervisor had it
        size_t left = 1;
      };
      auto m = std::make_shared<merge>();
      auto done = [rp, m]() mutable {
        if (--m->left > 0)
          return;
        status_report report;
        for (auto& [key, part] : m->by_key)
          report.insert(report.end(), part.begin(), part.end());
        rp.deliver(std::move(report));
      };
      self->state.routes.for_each([self, m, done](const std::string& key, route& r) {
        ++m->left;
        self->request(r.actor, status_deadline, status_atom_v)
          .then(
            [self, m, done, key](status_report& part) mutable {
              self->state.last_status[key] = part;
              m->by_key[key] = std::move(part);
              done();
            },
            [self, m, done, key](caf::error&) mutable {
              if (auto it = self->state.last_status.find(key); it != self->state.last_status.end())
                m->by_key[key] = it->second; // busy: its last report
              done();
            });
      });
      done();
      return rp;
    },
    [self](watch_atom, const caf::actor& watcher) {
      auto& ws = self->state.watchers;
      if (!watcher || std::find(ws.begin(), ws.end(), watcher) != ws.end())
        return;
      if (ws.size() >= static_cast<size_t>(self->state.cfg->max_subscriptions)) {
        log().warn("watch refused: max_subscriptions watchers already");
        return;
      }
      self->monitor(watcher);
      ws.push_back(watcher);
      // Later URL supervisors get the list when spawned.
      self->state.routes.for_each(
        [self, &watcher](const std::string&, route& r) { self->send(r.actor, watch_atom_v, watcher); });
    },
    [self](unwatch_atom, const caf::actor& watcher) {
      auto& ws = self->state.watchers;
      auto it = std::find(ws.begin(), ws.end(), watcher);
      if (it == ws.end())
        return;
      ws.erase(it);
      self->demonitor(watcher);
      self->state.routes.for_each([self, &watcher](const std::string&, route& r) {
        self->send(r.actor, unwatch_atom_v, watcher);
      });
    },
    [self](forget_atom, const std::string& key) { consider_retirement(self, key); },
    // The URL's supervisor itself, for a requester that caches it (api/connection_service.cpp)
    // and sends it the URL's requests directly. A bad URL is refused.
    [self](get_svc_atom, const std::string& url) -> caf::result<caf::actor> {
      auto& st = self->state;
      auto& key = key_of(self, url);
      if (auto* r = st.routes.find(key))
        return r->actor;
      if (st.shutting_down)
        return stopped_error(key);
      if (auto servers = parse_servers(key); !servers)
        return std::move(servers.error());
      if (auto* r = open_route(self, std::string{key}, false))
        return r->actor;
      return too_many_urls(key);
    },
    // -- the service lifecycle (see services/service_manager.hpp) ----------------------------
    [](svc_init_atom, const caf::actor&) {
      return caf::unit; // connections start on demand; configured URLs started with the actor
    },
    [self](svc_clean_atom) {
      // Answered once every URL supervisor closed every connection of its URL.
      auto rp = self->make_response_promise();
      auto left = std::make_shared<size_t>(1);
      auto done = [rp, left]() mutable {
        if (--*left == 0)
          rp.deliver(caf::unit);
      };
      self->state.routes.for_each([self, left, done](const std::string&, route& r) {
        ++*left;
        self->request(r.actor, caf::infinite, svc_clean_atom_v)
          .then([done]() mutable { done(); }, [done](caf::error&) mutable { done(); });
      });
      done();
      return rp;
    },
  };
}

} // namespace natsvisor
