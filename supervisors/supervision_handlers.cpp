// The connection supervisor's message handlers, in three groups: requests from service actors,
// the message path, and reports from connection actors and timers. Each handler feeds events to
// the pure cores (through `apply`) or answers from what they hold.

#include <algorithm>
#include <random>

#include "caf/all.hpp"

#include "base/logging.hpp"
#include "base/replies.hpp"
#include "base/request_deadline.hpp"
#include "config/url.hpp"
#include "nats/protocol.hpp"
#include "nats/type_ids.hpp"
#include "supervisors/supervision.hpp"

namespace natsvisor::supervision {

namespace {

// How many closed URLs keep their generation count (see supervisor_state::past_generations).
constexpr size_t max_remembered_urls = 10000;

// How long status() waits for a child's counters before using the last ones it has.
constexpr auto status_poll_deadline = std::chrono::milliseconds(100);

caf::response_promise refused(self_ptr self, caf::error err) {
  auto rp = self->make_response_promise();
  detail::deliver_error(rp, std::move(err));
  return rp;
}

// Why nothing may be served on `e` now, if anything forbids it.
caf::error refusal(self_ptr self, const url_entry& e) {
  if (self->state.shutting_down)
    return make_error(errc::service_stopped, "the connection service stopped", e.url);
  if (e.closing)
    return make_error(errc::connection_closed, "closing on request", e.url);
  if (!e.gave_up_reason.empty())
    return gave_up_error(e);
  return caf::none;
}

// The entry of `url` if requests may be served on it now, or why not.
caf::expected<url_entry*> open_entry(self_ptr self, const std::string& url) {
  auto entry = entry_for(self, url);
  if (!entry)
    return entry;
  if (auto err = refusal(self, **entry)) {
    forget_if_idle(self, **entry); // a refused request leaves no entry behind
    return err;
  }
  return entry;
}

bool is_watcher(self_ptr self, const caf::actor& a) {
  auto& ws = self->state.watchers;
  return std::find(ws.begin(), ws.end(), a) != ws.end();
}

// The entry of `url` to serve on; null once `rp` got the error of a bad URL, or `on_refused`
// ran with the reason why nothing may be served on the entry now.
template <class OnRefused>
url_entry* entry_to_serve(self_ptr self, const std::string& url, caf::response_promise& rp,
                          OnRefused on_refused) {
  auto entry = entry_for(self, url);
  if (!entry) {
    detail::deliver_error(rp, std::move(entry.error()));
    return nullptr;
  }
  if (auto err = refusal(self, **entry)) {
    on_refused(**entry, std::move(err));
    return nullptr;
  }
  return *entry;
}

// Serves a request on the URL's shared connection, or parks it until that is up. `handed_back`:
// the connection actor refused it because nats.c reconnects, so it waits for the reconnect.
caf::response_promise serve(self_ptr self, request_kind kind, const std::string& url,
                            caf::message forward = {}, bool handed_back = false) {
  parked_request r{kind, self->make_response_promise(), std::move(forward), std::nullopt};
  auto now = steady_clock::now();
  r.deadline = carried_deadline(r.forward);
  auto rp = r.promise;
  auto* found = entry_to_serve(self, url, rp, [&r](url_entry& e, caf::error err) {
    refuse(e, r, std::move(err)); // a health check answers unhealthy, not with an error
  });
  if (!found)
    return rp;
  auto& e = *found;
  ensure_shared(self, e);
  auto& shared = e.slots[0].machine;
  if (shared.usable()
      && !(handed_back && shared.state() == connection_state::reconnecting)) {
    answer(self, e, r);
    return rp;
  }
  auto deadline = park_until(now, self->state.cfg->request_timeout, r.deadline);
  if (!e.parked.add(++self->state.next_id, deadline, r))
    refuse(e, r,
           make_error(errc::overloaded,
                      "max_parked (" + std::to_string(self->state.cfg->max_parked)
                        + ") requests already wait for this URL's connection",
                      e.url));
  arm_timers(self, e);
  return rp;
}

// Rejects a subject before anything is sent, so a bad one never reaches the server.
caf::error check_subject(self_ptr self, const std::string& url, const std::string& subject,
                         bool wildcards) {
  if (valid_subject(subject, wildcards))
    return caf::none;
  return make_error(errc::invalid_subject, "invalid subject " + quote_subject(subject),
                    redact(key_of(self, url)));
}

// A caller's timeout as the deadline its request carries from here on (base/request_deadline.hpp).
caller_deadline deadline_of(caf::timespan timeout) {
  return {deadline_after(steady_clock::now(), timeout)};
}

template <class... Ts>
caf::response_promise forward(self_ptr self, const std::string& url, Ts&&... xs) {
  return serve(self, request_kind::forward, url, caf::make_message(std::forward<Ts>(xs)...));
}

// A publish: written at once when the URL's shared connection takes publishes, else held in the
// URL's outbox (never parked with a deadline like requests); refused ones are reported.
// `charged`: its sender's publisher charged the URL's credit; otherwise it is charged here, and
// refused with overloaded when the credit is used up.
template <class... Ts>
caf::response_promise accept_publish(self_ptr self, const std::string& url, bool charged,
                                     Ts&&... xs) {
  held_publish p{self->make_response_promise(), caf::make_message(std::forward<Ts>(xs)...)};
  auto rp = p.promise;
  auto size = publish_size(p.msg);
  publish_cost cost{size.first, size.second};
  auto* e = entry_to_serve(self, url, rp, [&](url_entry& x, caf::error err) {
    if (charged)
      x.credit->refund(cost);
    refuse_publish(self, x, std::move(p), std::move(err));
    forget_if_idle(self, x); // a refused publish leaves no entry behind
  });
  if (!e) // a bad URL: never charged (a publisher's URL was checked when it was made)
    return rp;
  if (!charged) {
    if (!e->credit->try_charge(cost)) {
      refuse_overloaded(self, *e, std::move(p));
      return rp;
    }
  }
  ensure_shared(self, *e);
  publish(self, *e, std::move(p), false);
  return rp;
}

caf::error check_subjects(self_ptr self, const std::string& url, const outgoing& m) {
  return check_subject(self, url, m.subject, false);
}
caf::error check_subjects(self_ptr self, const std::string& url, const std::vector<outgoing>& b) {
  for (auto& m : b)
    if (auto err = check_subject(self, url, m.subject, false))
      return err;
  return caf::none;
}
caf::error check_subjects(self_ptr self, const std::string& url, const packed_batch& b) {
  return check_subject(self, url, b.subject, false);
}

// A message-path publish as it arrives (pub or pub_conf; `charged` by its sender's publisher).
template <class Atom, class T, class... Ts>
caf::response_promise on_publish(self_ptr self, const std::string& url, bool charged, Atom op,
                                 T& x, Ts... xs) {
  if (auto err = check_subjects(self, url, x)) {
    if (charged)
      credit_of(self, key_of(self, url))->refund(cost_of(x));
    return refused(self, std::move(err));
  }
  return accept_publish(self, url, charged, op, std::move(x), xs...);
}

// A publish the connection actor handed back unwritten (it lost its connection): held before
// everything accepted since, or reported dropped when its URL was closed or given up meanwhile.
caf::response_promise publish_returned(self_ptr self, const std::string& key, caf::message msg) {
  held_publish p{self->make_response_promise(), std::move(msg)};
  auto rp = p.promise;
  auto* e = find_entry(self, key);
  if (!e) { // closed and forgotten: nothing is counted any more, the sender is still told
    auto url = redact(key);
    if (rp.async()) {
      publishes_dropped ev{url, drop_reason::closed, 1, 0, 0, caf::make_timestamp()};
      for (auto& w : self->state.watchers)
        self->send(w, ev);
    } else {
      rp.deliver(make_error(errc::dropped,
                            "closed: the URL was closed before the publish could be written", url));
    }
    return rp;
  }
  auto err = refusal(self, *e);
  if (err || e->slots[0].machine.state() == connection_state::closed)
    refuse_publish(self, *e, std::move(p), caf::error{}); // accepted once: errc::dropped
  else
    publish(self, *e, std::move(p), true);
  return rp;
}

// JetStream deduplicates by Nats-Msg-Id: with one on every publish, a publish that is parked
// again after a failed connection is stored once, however often it is sent.
void ensure_msg_id(self_ptr self, outgoing& m) {
  for (auto& [k, v] : m.headers)
    if (k == "Nats-Msg-Id")
      return;
  auto& st = self->state;
  m.headers.emplace_back("Nats-Msg-Id",
                         "nv-" + std::to_string(st.rng()) + "-" + std::to_string(++st.next_id));
}

} // namespace

caf::message_handler handle_requests(self_ptr self) {
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
    [self](health_atom, const std::string& url) { return serve(self, request_kind::health, url); },
    [self](scope_end_atom, const std::string& key) {
      if (auto* e = find_entry(self, key); e && e->active_scopes > 0) {
        --e->active_scopes;
        forget_if_idle(self, *e);
      }
    },
    [self](lease_atom, const std::string& url, caf::timespan timeout) {
      auto entry = open_entry(self, url);
      if (!entry)
        return refused(self, entry.error());
      auto& e = **entry;
      // The holder's name first: the promise takes the sender out of the current message.
      auto holder = caf::to_string(self->current_sender());
      auto rp = self->make_response_promise();
      lease_waiter w{rp, std::move(holder)};
      auto wait = timeout > caf::timespan{0} ? timeout : self->state.cfg->lease_timeout;
      auto decided = e.pool.request(++self->state.next_id, steady_clock::now() + wait, w);
      if (!decided)
        return refused(self, make_error(errc::overloaded,
                                        "max_parked (" + std::to_string(self->state.cfg->max_parked)
                                          + ") lease requests already wait",
                                        e.url));
      act_on_pool(self, e, std::move(*decided));
      arm_timers(self, e);
      return rp;
    },
    [self](lease_end_atom, const std::string& key, uint32_t index, uint64_t id) {
      if (auto* e = find_entry(self, key)) {
        act_on_pool(self, *e, e->pool.release(index, id)); // a stale or 2nd return: nothing
        forget_if_idle(self, *e);
      }
    },
    [self](leak_check_atom, const std::string& key, uint32_t index, uint64_t id) {
      auto* e = find_entry(self, key);
      if (!e || !e->pool.holds(index, id))
        return;
      ++e->leaks;
      auto& s = e->slots[index];
      auto held = steady_clock::now() - s.leased_at;
      log().warn("lease {} of {} held by {} for {} ms (leak_threshold {} ms)", id, e->url,
                 s.holder, to_ms(held), to_ms(self->state.cfg->leak_threshold));
      lease_leaked ev{e->url, id, s.holder, held};
      for (auto& w : self->state.watchers)
        self->send(w, ev);
    },
    [self](reset_atom, const std::string& url) -> caf::result<caf::unit_t> {
      auto& key = key_of(self, url);
      if (auto servers = parse_servers(key); !servers)
        return servers.error();
      auto* found = find_entry(self, key);
      if (!found)
        return caf::unit; // nothing to revive
      auto& e = *found;
      if (!e.gave_up_reason.empty())
        log().info("reviving {} on request", e.url);
      e.gave_up_reason.clear();
      for (uint32_t i = 0; i < e.slots.size(); ++i)
        apply(self, e, i, slot_event::reset{});
      return caf::unit;
    },
    [self](status_atom) {
      // Fresh traffic counters from every running child, each asked with a short deadline: a
      // child stuck behind nats.c's connection lock (a reconnect attempt) keeps its last ones,
      // and nothing here ever waits for nats.c.
      auto rp = self->make_response_promise();
      auto left = std::make_shared<size_t>(1);
      auto done = [self, rp, left]() mutable {
        if (--*left > 0)
          return;
        status_report report;
        for (auto& [key, e] : self->state.urls) {
          report.push_back(status_of(e));
          report.back().subscriptions = self->state.subscriptions.count_url(key);
        }
        rp.deliver(std::move(report));
      };
      for (auto& child : self->state.children) {
        ++*left;
        auto ref = child.second;
        self->request(caf::actor_cast<caf::actor>(child.first), status_poll_deadline, stats_atom_v)
          .then(
            [self, done, ref](traffic& t) mutable {
              if (auto* e = find_entry(self, ref.key);
                  e && e->slots[ref.index].machine.generation() == ref.generation
                  && e->slots[ref.index].machine.child_alive())
                e->slots[ref.index].current = t;
              done();
            },
            [done](caf::error&) mutable { done(); });
      }
      done();
      return rp;
    },
    [self](watch_atom, const caf::actor& watcher) {
      if (!watcher || is_watcher(self, watcher))
        return;
      if (self->state.watchers.size() >= static_cast<size_t>(self->state.cfg->max_subscriptions)) {
        log().warn("watch refused: max_subscriptions watchers already");
        return;
      }
      if (!self->state.subscriptions.has_subscriber(watcher))
        self->monitor(watcher);
      self->state.watchers.push_back(watcher);
    },
    [self](unwatch_atom, const caf::actor& watcher) {
      auto& ws = self->state.watchers;
      auto it = std::find(ws.begin(), ws.end(), watcher);
      if (it == ws.end())
        return;
      ws.erase(it);
      release_monitor(self, watcher);
    },
    [self](close_conn_atom, const std::string& url) {
      auto rp = self->make_response_promise();
      auto* e = find_entry(self, key_of(self, url));
      if (!e) {
        rp.deliver(caf::unit); // nothing open: closing is already done
        return rp;
      }
      e->on_closed.emplace_back([rp]() mutable { rp.deliver(caf::unit); });
      close_entry(self, *e, make_error(errc::connection_closed, "closed on request", e->url));
      return rp;
    },
    // -- the service lifecycle (see services/service_manager.hpp) ----------------------------
    [](svc_init_atom, const caf::actor&) {
      return caf::unit; // connections start on demand; configured URLs started with the actor
    },
    [self](svc_clean_atom) {
      // Answered once every connection of every URL is closed.
      auto rp = self->make_response_promise();
      auto left = std::make_shared<size_t>(self->state.urls.size());
      if (*left == 0)
        rp.deliver(caf::unit);
      for (auto* e : entries(self)) {
        e->on_closed.emplace_back([rp, left]() mutable {
          if (--*left == 0)
            rp.deliver(caf::unit);
        });
        close_entry(self, *e, make_error(errc::connection_closed, "closed on request", e->url));
      }
      return rp;
    },
  };
}

caf::message_handler message_path(self_ptr self) {
  return {
    [self](pub_atom op, const std::string& url, outgoing& m) {
      return on_publish(self, url, false, op, m);
    },
    [self](pub_atom op, const std::string& url, std::vector<outgoing>& batch) {
      return on_publish(self, url, false, op, batch);
    },
    [self](pub_atom op, const std::string& url, packed_batch& batch) {
      return on_publish(self, url, false, op, batch);
    },
    [self](pub_conf_atom op, const std::string& url, outgoing& m, caf::timespan timeout) {
      return on_publish(self, url, false, op, m, timeout);
    },
    // The same, charged by the sender's publisher (base/publish_credit.hpp).
    [self](pub_atom op, const std::string& url, outgoing& m, charged_atom) {
      return on_publish(self, url, true, op, m);
    },
    [self](pub_atom op, const std::string& url, std::vector<outgoing>& batch, charged_atom) {
      return on_publish(self, url, true, op, batch);
    },
    [self](pub_atom op, const std::string& url, packed_batch& batch, charged_atom) {
      return on_publish(self, url, true, op, batch);
    },
    [self](pub_conf_atom op, const std::string& url, outgoing& m, caf::timespan timeout,
           charged_atom) { return on_publish(self, url, true, op, m, timeout); },
    [self](req_atom, const std::string& url, outgoing& m, caf::timespan timeout) {
      if (auto err = check_subject(self, url, m.subject, false))
        return refused(self, std::move(err));
      return forward(self, url, req_atom_v, std::move(m), deadline_of(timeout));
    },
    [self](js_pub_atom, const std::string& url, outgoing& m, caf::timespan timeout) {
      if (auto err = check_subject(self, url, m.subject, false))
        return refused(self, std::move(err));
      ensure_msg_id(self, m);
      return forward(self, url, js_pub_atom_v, std::move(m), deadline_of(timeout));
    },
    // A publish the connection actor handed back (it lost its connection, or was not resumed
    // yet) goes to the URL's outbox, before everything accepted since.
    // A request a failed connection handed back, with its requester's promise: parked for the
    // next connection of the URL (never for the generation that failed).
    // The failure report (conn_down) precedes every bounce from the same child, so the slot is
    // past that generation here and the request waits for the next one. Unless the URL was
    // closed meanwhile: a request accepted before a close must not open the URL again.
    // A publish handed back while nats.c reconnects (the child's conn_event precedes it) waits
    // for the reconnect: sent back to that child now, it would only come back again.
    [self](bounce_atom, const std::string& key, caf::message& request) {
      if (is_publish(request))
        return publish_returned(self, key, std::move(request));
      auto* e = find_entry(self, key);
      if (!e || e->slots[0].machine.state() == connection_state::closed)
        return refused(self, make_error(errc::connection_closed, "closed on request", redact(key)));
      return serve(self, request_kind::forward, key, std::move(request), true);
    },
    [self](sub_atom, const std::string& url, const std::string& subject, const std::string& queue,
           const caf::actor& subscriber) {
      if (auto err = check_subject(self, url, subject, true))
        return refused(self, std::move(err));
      if (!queue.empty() && !valid_subject(queue, false)) // a queue name is one plain token
        return refused(self, make_error(errc::invalid_subject,
                                        "invalid queue group " + quote_subject(queue),
                                        redact(key_of(self, url))));
      if (!subscriber)
        return refused(self, make_error(errc::nats_error, "no subscriber actor", redact(url)));
      auto entry = open_entry(self, url);
      if (!entry)
        return refused(self, entry.error());
      auto& e = **entry;
      auto& subs = self->state.subscriptions;
      subscription_registry<caf::actor>::record r{++self->state.next_id, e.key, subject, queue,
                                                  subscriber};
      auto added = subs.add(r);
      if (!added.ok)
        return refused(self, make_error(errc::overloaded,
                                        "max_subscriptions ("
                                          + std::to_string(self->state.cfg->max_subscriptions)
                                          + ") reached",
                                        e.url));
      if (added.first_for_subscriber && !is_watcher(self, subscriber))
        self->monitor(subscriber);
      ensure_shared(self, e);
      auto rp = self->make_response_promise();
      if (e.slots[0].machine.usable())
        subscribe_on_child(self, e, r, rp);
      else
        rp.deliver(r.id); // kept: subscribed as soon as the connection is up
      return rp;
    },
    // Ids are unique over all URLs; the URL argument only mirrors subscribe's.
    [self](unsub_atom, const std::string&, uint64_t id) {
      auto removed = self->state.subscriptions.remove(id);
      if (!removed)
        return;
      if (removed->last_for_subscriber)
        release_monitor(self, removed->rec.subscriber);
      if (auto* e = find_entry(self, removed->rec.url))
        unsubscribe_on_children(self, *e, id);
      else
        offer_retirement(self, removed->rec.url);
    },
  };
}

caf::message_handler from_children(self_ptr self) {
  // The current child of a slot, or null: a message from a replaced generation changes nothing.
  auto current = [self](uint64_t generation) -> std::pair<url_entry*, uint32_t> {
    auto sender = self->current_sender();
    auto it = sender ? self->state.children.find(sender->address())
                     : self->state.children.end();
    if (it == self->state.children.end() || it->second.generation != generation)
      return {nullptr, 0};
    auto* e = find_entry(self, it->second.key);
    auto index = it->second.index;
    if (!e || !e->slots[index].machine.alive(generation))
      return {nullptr, 0}; // a generation that failed or ended: nothing to act on
    return {e, index};
  };
  auto serving = [self, current](uint64_t generation) -> std::pair<url_entry*, uint32_t> {
    auto found = current(generation);
    if (found.first && found.first->slots[found.second].machine.generation() != generation)
      return {nullptr, 0}; // a replacement being prepared, or a retiring child
    return found;
  };
  return {
    [self, current](conn_up_atom, uint64_t generation, connection_handle& conn,
                    jetstream_handle& js, std::string& js_problem) {
      auto [e, index] = current(generation);
      if (!e)
        return;
      auto& s = e->slots[index];
      if (generation == s.machine.next_generation()) {
        s.next.conn = std::move(conn);
        s.next.js = std::move(js);
        s.next.js_problem = std::move(js_problem);
      } else if (generation == s.machine.generation()) {
        s.conn = std::move(conn);
        s.js = std::move(js);
        s.js_problem = std::move(js_problem);
      }
      apply(self, *e, index, slot_event::child_up{generation, steady_clock::now()});
    },
    [self, serving](lame_duck_atom, uint64_t generation) {
      auto [e, index] = serving(generation);
      if (!e)
        return;
      auto& m = e->slots[index].machine;
      notify(self, *e, index, slot_action::notify{m.state(), "server in lame duck mode"});
      // Only the shared connection moves (a leased one belongs to its holder), and only where
      // the URL names another server to move to.
      auto servers = parse_servers(e->key);
      if (index == 0 && servers && servers->size() > 1)
        apply(self, *e, index, slot_event::lame_duck{generation});
    },
    [self, serving](conn_event_atom, uint64_t generation, connection_state state,
                    std::string& detail) {
      auto [e, index] = serving(generation);
      if (!e)
        return;
      auto now = steady_clock::now();
      auto& m = e->slots[index].machine;
      if (state == connection_state::reconnecting)
        apply(self, *e, index, slot_event::disconnected{generation, now});
      else if (m.state() == connection_state::reconnecting)
        apply(self, *e, index, slot_event::reconnected{generation, now});
      else if (m.state() == connection_state::connected) // news while up (lame duck mode)
        notify(self, *e, index, slot_action::notify{state, std::move(detail)});
    },
    [self, current](conn_down_atom, uint64_t generation, caf::error& err) {
      auto [e, index] = current(generation);
      if (!e)
        return;
      auto& s = e->slots[index];
      auto child = generation == s.machine.next_generation()       ? s.next.child
                   : generation == s.machine.retiring_generation() ? s.retiring
                                                                   : s.child;
      child_ended(self, *e, index, generation, err);
      // It hands back what it still holds, then stops: everything this supervisor sent it before
      // this stop_conn reaches it first.
      self->send(child, stop_conn_atom_v, err);
    },
    [self](sub_slow_atom, uint64_t id, uint64_t dropped, uint64_t episodes) {
      // Once per episode (the connection actor tells only its start): no message contents.
      auto* r = self->state.subscriptions.find(id);
      if (!r)
        return; // unsubscribed meanwhile
      auto url = redact(r->url);
      log().warn("subscription {} to {} on {}: the subscriber does not keep up, messages past "
                 "its pending limits are dropped ({} so far, episode {})",
                 id, quote_subject(r->subject), url, dropped, episodes);
      slow_consumer ev{std::move(url), id, r->subject, dropped, episodes, caf::make_timestamp()};
      for (auto& w : self->state.watchers)
        self->send(w, ev);
    },
    [self, serving](stats_atom, uint64_t generation, traffic& t) {
      if (auto [e, index] = serving(generation); e)
        e->slots[index].current = t;
    },
    [self](restart_atom, const std::string& key, uint32_t index, uint64_t generation) {
      if (auto* e = find_entry(self, key); e && index < e->slots.size())
        apply(self, *e, index, slot_event::timer{generation});
    },
    [self](sweep_atom, const std::string& key) {
      auto* e = find_entry(self, key);
      if (!e)
        return;
      auto now = steady_clock::now();
      for (auto& [id, r] : e->parked.expire(now)) {
        auto detail = (r.deadline && *r.deadline <= now
                         ? std::string{"no connection within the request's timeout"}
                         : "no connection within request_timeout ("
                             + std::to_string(to_ms(self->state.cfg->request_timeout)) + " ms)")
                      + ", state " + to_string(e->slots[0].machine.state());
        if (auto& last = e->slots[0].machine.last_error(); !last.empty())
          detail += ", last error: " + last;
        refuse(*e, r, make_error(errc::timeout, detail, e->url));
      }
      for (auto& [id, w] : e->pool.expire(now))
        detail::deliver_error(w.promise,
                              make_error(errc::pool_exhausted,
                                         "no pooled connection became free in time ("
                                           + std::to_string(e->pool.active()) + " of "
                                           + std::to_string(e->pool.capacity()) + " leased)",
                                         e->url));
      expire_publishes(self, *e);
      report_overloaded(self, *e);
      arm_timers(self, *e);
    },
    [self](forget_atom, const std::string& key) {
      // Erased once nothing runs, waits or is held: status lists only URLs in use.
      auto it = self->state.urls.find(key);
      if (it == self->state.urls.end()) {
        offer_retirement(self, key);
        return;
      }
      if (!idle(it->second))
        return;
      auto& past = self->state.past_generations;
      uint64_t pooled = 0;
      for (size_t i = 1; i < it->second.slots.size(); ++i)
        pooled = std::max(pooled, it->second.slots[i].machine.generation());
      past[key] = {it->second.slots[0].machine.last_spawned(), pooled};
      if (past.size() > max_remembered_urls)
        past.erase(past.begin()); // a forgotten URL then counts from 1 again: harmless
      self->state.urls.erase(it);
      offer_retirement(self, key);
    },
  };
}

} // namespace natsvisor::supervision
