// old_vs_new: the same jobs done the old way and the natsvisor way, side by side.
//
//   OLD: raw nats.c; every call site connects, uses the connection and closes it. Each call
//        pays a TCP connect and handshake, and a server restart is every caller's problem.
//   NEW: natsvisor::connection_service owns one supervised connection per URL. Blocking code
//        says what it wants (svc.publish, svc.request, or svc.with_connection when it needs
//        nats.c itself); actors use the typed protocol (the responder below answers with
//        natsvisor::tell). The connection survives restarts of the server.
//
// Usage: old_vs_new [--natsvisor.nats_url=nats://127.0.0.1:PORT]
//        (else $NATS_URL, else nats://localhost:4222; a server is started there if none listens)
// Exit status 0 when both ways did every job, 1 otherwise.

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "api/protocol.hpp"
#include "example_support.hpp"

using namespace std::chrono_literals;
using namespace natsvisor_examples;

namespace {

// ---- OLD: connect, use, close, at every call ------------------------------------------------

bool old_publish(const std::string& url, const std::string& subject) {
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s == NATS_OK)
    s = natsConnection_PublishString(nc, subject.c_str(), "hello");
  if (s == NATS_OK)
    s = natsConnection_Flush(nc);
  natsConnection_Destroy(nc); // close + free, every single time
  return s == NATS_OK;
}

bool old_request(const std::string& url, const std::string& subject) {
  natsConnection* nc = nullptr;
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s == NATS_OK)
    s = natsConnection_RequestString(&reply, nc, subject.c_str(), "ping", 2000);
  natsMsg_Destroy(reply);
  natsConnection_Destroy(nc);
  return s == NATS_OK;
}

bool old_raw_access(const std::string& url) { // nats.c itself, e.g. for its statistics
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s == NATS_OK)
    s = natsConnection_Flush(nc);
  natsConnection_Destroy(nc);
  return s == NATS_OK;
}

// ---- NEW: the service owns the connection ---------------------------------------------------

bool new_publish(natsvisor::connection_service& svc, const std::string& subject) {
  return !svc.publish({subject, "hello", {}}); // no error: nats.c took the message
}

bool new_request(natsvisor::connection_service& svc, const std::string& subject) {
  return static_cast<bool>(svc.request({subject, "ping", {}}, 2s));
}

bool new_raw_access(natsvisor::connection_service& svc) { // a scope: released however it ends
  natsStatus s = NATS_ERR;
  auto err = svc.with_connection(
    [&s](const natsvisor::connection_handle& h) { s = natsConnection_Flush(h.get()); });
  return !err && s == NATS_OK;
}

// An actor on the message path: requests arrive as nats_message values (svc.subscribe), and it
// answers with a fire-and-forget publish to the reply subject. It never touches nats.c.
caf::behavior responder(caf::event_based_actor* self, natsvisor::connection_api svc) {
  return {
    [self, svc](const natsvisor::nats_message& m) {
      if (!m.reply.empty())
        natsvisor::tell(self, svc, natsvisor::pub_atom_v, std::string{},
                        natsvisor::outgoing{m.reply, "pong: " + m.payload, {}});
    },
  };
}

// Milliseconds `f` took; `ok` becomes false when it failed.
double timed(const std::function<bool()>& f, bool& ok) {
  auto t0 = std::chrono::steady_clock::now();
  ok = f() && ok;
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One row of the table: the same job done both ways.
bool row(const std::string& job, const std::function<bool()>& old_way,
         const std::function<bool()>& new_way) {
  bool ok = true;
  double old_ms = timed(old_way, ok);
  double new_ms = timed(new_way, ok);
  std::printf("%-18s %9.3f ms %9.3f ms%s\n", job.c_str(), old_ms, new_ms, ok ? "" : "  FAILED");
  return ok;
}

} // namespace

void caf_main(caf::actor_system& sys, const natsvisor_examples::config& cfg) {
  auto start = prepare(cfg);
  if (!start)
    return;
  auto* s = &start->settings;
  const std::string url = s->nats_url;
  natsvisor::connection_service svc{sys, *s};
  auto echo = sys.spawn(responder, svc.api());
  auto id = svc.subscribe("demo.echo", echo); // it answers the old requests too
  if (!id)
    say("main", "subscribe failed: %s", natsvisor::describe(id.error()).c_str());
  bool ok = static_cast<bool>(id);

  std::printf("\n%-18s %12s %12s\n", "job", "OLD", "NEW");
  for (int i = 1; i <= 3; ++i) {
    auto subject = "demo.publish." + std::to_string(i);
    auto old_way = [&] { return old_publish(url, subject); };
    ok &= row("publish #" + std::to_string(i), old_way, [&] { return new_publish(svc, subject); });
  }
  for (int i = 1; i <= 3; ++i) {
    auto old_way = [&] { return old_request(url, "demo.echo"); };
    ok &= row("request #" + std::to_string(i), old_way,
              [&] { return new_request(svc, "demo.echo"); });
  }
  auto old_way = [&] { return old_raw_access(url); };
  ok &= row("nats.c flush", old_way, [&] { return new_raw_access(svc); });
  std::printf(
    "\nOLD connects at every call; NEW connected once (at the subscribe) and reuses it.\n");

  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown); // its subscription ends with it
  say("main", ok ? "done: success" : "done: FAILED");
  cfg.exit_with(ok ? 0 : 1);
}

CAF_MAIN()
