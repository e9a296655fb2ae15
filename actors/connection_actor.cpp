#include "nats/status.hpp"
#include "actors/connection_actor.hpp"

#include <chrono>
#include <vector>

#include "caf/all.hpp"

#include "nats/message_io.hpp"
#include "nats/callbacks.hpp"
#include "base/replies.hpp"
#include "base/logging.hpp"
#include "config/url.hpp"
#include "nats/type_ids.hpp"
#include "nats/protocol.hpp"

namespace natsvisor {

namespace {

// How often pending requests are checked for their deadline: a request times out at most this
// much after its deadline, never before.
constexpr auto request_sweep_interval = std::chrono::milliseconds(10);

int64_t to_ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

// Applies the configuration to fresh nats.c options. Returns the first failing status.
natsStatus configure(natsOptions* opts, const std::vector<std::string>& servers,
                     const settings& cfg) {
  std::vector<const char*> raw;
  for (auto& s : servers)
    raw.push_back(s.c_str());
  auto& n = cfg.nats;
  natsStatus s = natsOptions_SetServers(opts, raw.data(), static_cast<int>(raw.size()));
  // Keep the configured order: the first server of a list is the preferred one.
  if (s == NATS_OK)
    s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetName(opts, "natsvisor");
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(opts, to_ms(cfg.connection_timeout));
  if (s == NATS_OK)
    s = natsOptions_SetAllowReconnect(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(opts, n.max_reconnect);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(opts, to_ms(n.reconnect_wait));
  if (s == NATS_OK)
    s = natsOptions_SetReconnectJitter(opts, to_ms(n.reconnect_jitter), to_ms(n.reconnect_jitter));
  if (s == NATS_OK)
    s = natsOptions_SetPingInterval(opts, to_ms(n.ping_interval));
  if (s == NATS_OK)
    s = natsOptions_SetMaxPingsOut(opts, n.max_pings_out);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectBufSize(opts, n.reconnect_buf_size);
  if (s == NATS_OK)
    s = natsOptions_SetSendAsap(opts, n.send_asap);
  if (s == NATS_OK && !cfg.user.empty())
    s = natsOptions_SetUserInfo(opts, cfg.user.c_str(), cfg.password.c_str());
  if (s == NATS_OK && !cfg.token.empty())
    s = natsOptions_SetToken(opts, cfg.token.c_str());
  if (s == NATS_OK && !cfg.creds_file.empty())
    s = natsOptions_SetUserCredentialsFromFiles(opts, cfg.creds_file.c_str(), nullptr);
  if (s == NATS_OK && cfg.tls)
    s = natsOptions_SetSecure(opts, true);
  if (s == NATS_OK && !cfg.tls_ca_file.empty())
    s = natsOptions_LoadCATrustedCertificates(opts, cfg.tls_ca_file.c_str());
  if (s == NATS_OK && !cfg.tls_cert_file.empty())
    s = natsOptions_LoadCertificatesChain(opts, cfg.tls_cert_file.c_str(),
                                          cfg.tls_key_file.c_str());
  return s;
}

// Empty when the server offers JetStream to this account, otherwise why not. Only definite
// answers count: a slow reply leaves JetStream presumed available, and its calls report.
std::string jetstream_problem(jsCtx* js, const settings& cfg) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = to_ms(cfg.health_timeout);
  jsAccountInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetAccountInfo(&info, js, &o, &jerr);
  jsAccountInfo_Destroy(info);
  if (s == NATS_OK)
    return {};
  if (s == NATS_NO_RESPONDERS)
    return "JetStream is not enabled on the server (no responders)";
  if (jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr)
    return "JetStream is not enabled for this account";
  return {};
}

} // namespace

connection_actor_state::~connection_actor_state() {
  if (core) {
    // Handles may outlive this actor: closing (not destroying) makes them report closed, and
    // the last handle destroys the connection. This is the only place the actor closes its
    // connection, so the closed callback it causes finds the actor gone: every `closed` the
    // actor does handle is nats.c giving up, never an intentional close.
    natsConnection_Close(core->nc);
  }
  // Closed subscriptions deliver nothing more; their closures go with their completion.
  for (auto& [id, sub] : subscriptions)
    natsSubscription_Destroy(sub);
  natsSubscription_Destroy(replies);
}

namespace {

caf::behavior running(connection_actor_type* self);

// Creates the JetStream context of this generation and hands both handles to the supervisor.
void report_up(connection_actor_type* self) {
  auto& st = self->state;
  jsCtx* js = nullptr;
  jetstream_handle js_handle;
  std::string js_problem;
  if (auto s = natsConnection_JetStream(&js, st.core->nc, nullptr); s == NATS_OK) {
    js_handle = jetstream_handle{std::make_shared<detail::jetstream_core>(st.core, js), st.url,
                                 st.generation};
    js_problem = jetstream_problem(js, *st.cfg);
  } else {
    js_problem = describe(from_status(s, errc::jetstream_unavailable, st.url));
  }
  if (!st.replies) {
    natsInbox* inbox = nullptr;
    if (natsInbox_Create(&inbox) == NATS_OK) {
      st.inbox = std::string{inbox} + ".";
      natsInbox_Destroy(inbox);
      auto s = detail::subscribe(&st.replies, st.core->nc, st.inbox + "*", {}, self->ctrl(), 0);
      if (s != NATS_OK)
        log().error("no reply subscription on {}: {}", st.url, natsStatus_GetText(s));
    }
  }
  log().info("connected to {} (generation {})", st.url, st.generation);
  self->send(st.supervisor, conn_up_atom_v, st.generation,
             connection_handle{st.core, st.url, st.generation}, std::move(js_handle),
             std::move(js_problem));
}

health_result check_health(connection_actor_type* self) {
  auto& st = self->state;
  health_result result;
  result.url = st.url;
  result.generation = st.generation;
  auto start = std::chrono::steady_clock::now();
  auto s
    = natsConnection_FlushTimeout(st.core->nc, std::max<int64_t>(1, to_ms(st.cfg->health_timeout)));
  result.rtt = std::chrono::steady_clock::now() - start;
  result.healthy = s == NATS_OK;
  if (!result.healthy)
    result.detail = describe(from_status(s, errc::nats_error, st.url, "round trip failed"));
  return result;
}

// Answers every request still waiting for its reply; a promise dropped silently would leave
// its requester waiting until its own deadline.
void fail_pending(connection_actor_type* self, const caf::error& err) {
  auto& st = self->state;
  for (auto& [token, p] : st.pending)
    detail::deliver_error(p.promise, err);
  st.pending.clear();
}

// Common to both states: the callbacks that do not depend on having been connected.
void on_closed(connection_actor_type* self, errc code, const std::string& what) {
  auto& st = self->state;
  std::string detail = what;
  if (const char* last = nullptr; natsConnection_GetLastError(st.core->nc, &last) != NATS_OK
                                  && last != nullptr && *last != '\0')
    detail += std::string{": "} + last;
  else if (!st.last_async_error.empty())
    detail += ": " + st.last_async_error;
  auto err = make_error(code, std::move(detail), st.url);
  fail_pending(self, err);
  self->quit(std::move(err));
}

caf::behavior connecting(connection_actor_type* self) {
  return {
    [self](connected_atom) {
      report_up(self);
      self->become(running(self));
    },
    [self](disconnected_atom) {
      // nats.c reports failed attempts of the first connect as disconnects: nothing to tell.
    },
    [self](reconnected_atom) {
      report_up(self);
      self->become(running(self));
    },
    [self](closed_atom) {
      on_closed(self, errc::connect_failed,
                "no server reachable after " + std::to_string(self->state.cfg->nats.max_reconnect)
                  + " connect attempts");
    },
    [self](lame_duck_atom) { /* nop: not connected yet */ },
    [self](async_error_atom, std::string& text) { self->state.last_async_error = std::move(text); },
    [self](health_atom) {
      health_result r;
      r.url = self->state.url;
      r.generation = self->state.generation;
      r.detail = "not connected yet";
      return r;
    },
  };
}

caf::error publish_error(connection_actor_type* self, natsStatus s, const std::string& subject) {
  return from_status(s, errc::nats_error, self->state.url, "publish to " + subject);
}

// nats.c's flusher waits a millisecond to batch small writes, which would add a millisecond to
// every request and every reply. So the message path pushes its writes out at once, but only
// when no further message waits in this actor's mailbox: a burst is written with one flush (one
// PING round trip, on this detached actor's own thread), so batching follows the load. While
// nats.c reconnects, its own buffer holds the writes and nothing is flushed.
void flush_if_idle(connection_actor_type* self) {
  auto& st = self->state;
  if (st.cfg->nats.send_asap || !self->mailbox().empty())
    return; // nats.c writes at once anyway, or more work follows and the flush waits for it
  auto nc = st.core->nc;
  auto now = std::chrono::steady_clock::now();
  if (now < st.flush_paused_until || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED)
    return;
  // A server that hangs (rather than dies) would stall this actor at every flush: after a
  // flush without PONG, leave the writes to nats.c's flusher for a while.
  if (natsConnection_FlushTimeout(nc, 20) == NATS_TIMEOUT)
    st.flush_paused_until = now + std::chrono::seconds(1);
}

// Sends a request whose reply arrives on the shared reply subscription.
caf::response_promise start_request(connection_actor_type* self, const outgoing& m,
                                    caf::timespan timeout, bool jetstream) {
  auto& st = self->state;
  auto rp = self->make_response_promise();
  if (!st.replies) {
    detail::deliver_error(rp, make_error(errc::nats_error, "no reply subscription", st.url));
    return rp;
  }
  auto token = ++st.next_token;
  auto reply = st.inbox + std::to_string(token);
  if (auto s = detail::publish(st.core->nc, m, reply.c_str()); s != NATS_OK) {
    detail::deliver_error(rp, publish_error(self, s, m.subject));
    return rp;
  }
  st.pending.emplace(token, connection_actor_state::pending_request{
                              rp, jetstream, std::chrono::steady_clock::now() + timeout});
  // One sweep timer for all requests instead of a timer each: CAF's timer thread is costly.
  if (!st.sweeping) {
    st.sweeping = true;
    self->delayed_send(self, request_sweep_interval, req_to_atom_v);
  }
  flush_if_idle(self);
  return rp;
}

// A reply on the shared reply subscription: completes its request.
void finish_request(connection_actor_type* self, nats_message& msg, bool no_responders) {
  auto& st = self->state;
  if (msg.subject.size() <= st.inbox.size())
    return;
  auto token = std::strtoull(msg.subject.c_str() + st.inbox.size(), nullptr, 10);
  auto it = st.pending.find(token);
  if (it == st.pending.end())
    return; // answered already (timeout) or a second reply: nobody waits for it
  auto p = std::move(it->second);
  st.pending.erase(it);
  if (no_responders)
    detail::deliver_error(p.promise, make_error(p.jetstream ? errc::no_stream : errc::no_responders,
                                                p.jetstream ? "no stream captures the subject"
                                                            : "no subscriber for the request",
                                                st.url));
  else if (p.jetstream) {
    if (auto ack = parse_js_ack(msg.payload, st.url))
      p.promise.deliver(std::move(*ack));
    else
      detail::deliver_error(p.promise, std::move(ack.error()));
  } else
    p.promise.deliver(std::move(msg));
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

caf::behavior running(connection_actor_type* self) {
  auto event = [self](connection_state s, std::string detail) {
    self->send(self->state.supervisor, conn_event_atom_v, self->state.generation, s,
               std::move(detail));
  };
  return {
    [self](connected_atom) { /* nop: already connected */ },
    [self, event](disconnected_atom) {
      log().warn("lost the server of {}: nats.c reconnects (generation {})", self->state.url,
                 self->state.generation);
      event(connection_state::reconnecting, "disconnected; nats.c reconnects");
    },
    [self, event](reconnected_atom) {
      log().info("reconnected to {} (generation {})", self->state.url, self->state.generation);
      event(connection_state::connected, "reconnected by nats.c");
    },
    [self](closed_atom) {
      on_closed(self, errc::connection_closed, "nats.c closed the connection for good");
    },
    [self, event](lame_duck_atom) {
      log().warn("server of {} entered lame duck mode", self->state.url);
      event(connection_state::connected, "server in lame duck mode");
    },
    [self](async_error_atom, std::string& text) {
      log().warn("asynchronous error on {}: {}", self->state.url, text);
      self->state.last_async_error = std::move(text);
    },
    [self](health_atom) { return check_health(self); },
    [self](pub_atom, const outgoing& m) -> caf::result<caf::unit_t> {
      if (auto s = detail::publish(self->state.core->nc, m); s != NATS_OK)
        return detail::fail<caf::unit_t>(self, publish_error(self, s, m.subject));
      flush_if_idle(self);
      return caf::unit;
    },
    [self](pub_atom, const std::vector<outgoing>& batch) -> caf::result<uint64_t> {
      uint64_t sent = 0;
      for (auto& m : batch) {
        if (auto s = detail::publish(self->state.core->nc, m); s != NATS_OK)
          return detail::fail<uint64_t>(self, publish_error(self, s, m.subject));
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{}; // fire and forget: no count to send back
      return sent;
    },
    [self](pub_atom, const packed_batch& batch) -> caf::result<uint64_t> {
      auto nc = self->state.core->nc;
      const char* data = batch.data.data();
      size_t offset = 0;
      uint64_t sent = 0;
      for (auto size : batch.sizes) {
        if (offset + size > batch.data.size())
          return detail::fail<uint64_t>(
            self,
            make_error(errc::nats_error, "packed batch sizes exceed its data", self->state.url));
        auto s = natsConnection_Publish(nc, batch.subject.c_str(), data + offset,
                                        static_cast<int>(size));
        if (s != NATS_OK)
          return detail::fail<uint64_t>(self, publish_error(self, s, batch.subject));
        offset += size;
        ++sent;
      }
      flush_if_idle(self);
      if (self->current_message_id().is_async())
        return caf::delegated<uint64_t>{};
      return sent;
    },
    [self](req_atom, const outgoing& m, caf::timespan timeout) {
      return start_request(self, m, timeout, false);
    },
    [self](js_pub_atom, const outgoing& m, caf::timespan timeout) {
      return start_request(self, m, timeout, true);
    },
    [self](nats_message& reply) { finish_request(self, reply, is_no_responders(reply)); },
    [self](req_to_atom) {
      auto& st = self->state;
      auto now = std::chrono::steady_clock::now();
      for (auto it = st.pending.begin(); it != st.pending.end();) {
        if (it->second.deadline <= now) {
          detail::deliver_error(it->second.promise,
                                make_error(errc::timeout, "no reply in time", st.url));
          it = st.pending.erase(it);
        } else {
          ++it;
        }
      }
      st.sweeping = !st.pending.empty();
      if (st.sweeping)
        self->delayed_send(self, request_sweep_interval, req_to_atom_v);
    },
    [self](sub_atom, uint64_t id, const std::string& subject, const std::string& queue,
           const caf::actor& subscriber) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.subscriptions.count(id) != 0)
        return id;
      natsSubscription* sub = nullptr;
      auto s = detail::subscribe(&sub, st.core->nc, subject, queue,
                                 caf::actor_cast<caf::weak_actor_ptr>(subscriber), id);
      if (s != NATS_OK)
        return detail::fail<uint64_t>(
          self, from_status(s, errc::nats_error, st.url, "subscribe to " + subject));
      st.subscriptions.emplace(id, sub);
      // Once the server has seen the SUB, a message published after this reply reaches it.
      // While nats.c reconnects it sends the SUB itself on reconnect: no flush to wait for.
      if (natsConnection_Status(st.core->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(st.core->nc,
                                    std::max<int64_t>(1, to_ms(st.cfg->health_timeout)));
      return id;
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

} // namespace

caf::behavior connection_actor(connection_actor_type* self, std::string key, uint64_t generation,
                               caf::actor supervisor, std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.key = std::move(key);
  st.url = redact(st.key);
  st.generation = generation;
  st.supervisor = std::move(supervisor);
  st.cfg = std::move(cfg);
  // A stray message (e.g. a late reply) must never take a connection down.
  detail::tolerate_strays(self, "connection actor for " + st.url);
  // Stopped on request (close, shutdown): requests in flight learn why before the actor goes.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    fail_pending(self, make_error(errc::connection_closed, "closed on request", self->state.url));
    self->quit(msg.reason);
  });
  // Without its supervisor nobody could use this connection.
  self->monitor(st.supervisor);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  auto servers = parse_servers(st.key);
  if (!servers) {
    self->quit(servers.error());
    return {};
  }
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK)
    s = configure(opts, *servers, *st.cfg);
  if (s != NATS_OK) {
    auto err = from_status(s, errc::invalid_config, st.url, "invalid connection options");
    natsOptions_Destroy(opts);
    self->quit(std::move(err));
    return {};
  }
  auto* bridge = new detail::callback_bridge{self->ctrl()};
  if (s = detail::install_callbacks(opts, bridge); s != NATS_OK) {
    natsOptions_Destroy(opts);
    delete bridge; // no connection exists, so no callback can run
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
    // nats.c released the half-made connection without calling back.
    auto err = from_status(s, errc::connect_failed, st.url, "connect");
    delete bridge;
    self->quit(std::move(err));
    return {};
  }
  st.core = std::make_shared<detail::connection_core>(nc);
  if (s == NATS_OK) {
    report_up(self);
    return running(self);
  }
  log().info("no server at {} yet: nats.c keeps trying (generation {})", st.url, st.generation);
  return connecting(self);
}

} // namespace natsvisor
