// chaos: no acknowledged JetStream message is lost while the server is SIGKILLed twice.
//
//  1. starts its own nats-server (JetStream, temporary store) on a free 127.0.0.1 port;
//  2. a watcher prints every state change; the publisher (chaos_publisher.hpp) publishes one
//     message at a time through the message path and records every acknowledged sequence;
//  3. outage 1: SIGKILL and an immediate restart: nats.c reconnects inside the connection;
//  4. outage 2: SIGKILL, down for longer than nats.c's reconnect budget: nats.c closes the
//     connection and the supervisor starts a fresh one (a new generation);
//  5. reads every acknowledged sequence back from the stream.
//
// Usage: chaos    (about 10 s). Exit status 0 when every acknowledged message is in the stream
// and the supervisor restarted the connection, 1 otherwise.

#include <cstdio>
#include <memory>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "chaos_publisher.hpp"
#include "example_support.hpp"
#include "local_server.hpp"

using namespace std::chrono_literals;
using namespace natsvisor_examples;

namespace {

constexpr const char* stream_name = "CHAOS";

// How many acknowledged jobs are not in the stream (at their sequence, with their subject);
// -1 when the stream could not be read.
long long count_missing(natsvisor::connection_service& svc, const chaos::ledger& book) {
  auto js = svc.get_jetstream();
  if (!js) {
    say("chaos", "no JetStream for the check: %s", natsvisor::describe(js.error()).c_str());
    return -1;
  }
  long long missing = 0;
  for (auto& [job, seq] : book.acked) {
    natsMsg* m = nullptr;
    natsStatus st = js_GetMsg(&m, js->get(), stream_name, seq, nullptr, nullptr);
    bool found = st == NATS_OK && chaos::subject_of(job) == natsMsg_GetSubject(m);
    natsMsg_Destroy(m);
    if (!found && missing++ < 10)
      say("chaos", "job %llu: acknowledged sequence %llu is missing (%s)",
          static_cast<unsigned long long>(job), static_cast<unsigned long long>(seq),
          st == NATS_OK ? "another message is stored there" : natsStatus_GetText(st));
  }
  return missing;
}

// Outage 1 (shorter than nats.c's budget), then outage 2 (longer): the connection's
// generation afterwards, or 0 when it did not come back.
uint64_t two_outages(local_server& server, natsvisor::connection_service& svc, caf::timespan down) {
  say("chaos", "outage 1: SIGKILL nats-server (pid %d) and start it again at once", server.pid());
  server.kill();
  if (!server.start() || wait_connected(svc, 1, 5s) == 0 || !nap(2s))
    return 0;
  say("chaos", "outage 2: SIGKILL nats-server (pid %d), down for %lld ms", server.pid(), ms(down));
  server.kill();
  if (!nap(down) || !server.start())
    return 0;
  say("chaos", "nats-server is back (pid %d)", server.pid());
  auto generation = wait_connected(svc, 2, 10s);
  if (generation == 0)
    say("chaos", "the supervisor did not bring up a new connection within 10 s");
  return generation;
}

} // namespace

void caf_main(caf::actor_system& sys, const natsvisor_examples::config& cfg) {
  auto s = settings_from(cfg);
  if (!s)
    return cfg.exit_with(2);
  catch_interrupts();
  local_server server{free_loopback_port(), "natsvisor-chaos"};
  if (!server.start())
    return cfg.exit_with(1);
  say("chaos", "nats-server pid %d on %s (store in %s)", server.pid(), server.url().c_str(),
      server.dir().c_str());
  s->nats_url = server.url();
  s->nats.max_reconnect = 10;
  s->nats.reconnect_wait = 100ms;
  s->nats.reconnect_jitter = 20ms;
  s->policy.base_delay = 300ms;
  s->policy.max_delay = 1s;
  s->request_timeout = 3s;
  s->connection_timeout = 1s;
  if (!given(cfg, "log_level"))
    s->log_level = "error"; // the watcher and the publisher show what happens
  auto budget = s->nats.max_reconnect * (s->nats.reconnect_wait + s->nats.reconnect_jitter);

  natsvisor::connection_service svc{sys, *s};
  auto w = sys.spawn(watcher);
  svc.watch(w);
  auto js = svc.get_jetstream();
  auto err = js ? ensure_stream(*js, stream_name, "chaos.>") : js.error();
  if (err) {
    say("chaos", "FAILED: no stream: %s", natsvisor::describe(err).c_str());
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
    return cfg.exit_with(1);
  }
  auto book = std::make_shared<chaos::ledger>();
  auto pub = sys.spawn(chaos::publisher, svc.api(), book);
  say("chaos", "publishing to stream %s, one message at a time", stream_name);
  uint64_t generation = nap(2s) ? two_outages(server, svc, budget + 1500ms) : 0;
  bool ran = generation != 0 && nap(2s);

  caf::scoped_actor self{sys};
  self->request(pub, 10s, chaos::stop_atom_v)
    .receive([] {},
             [&](caf::error& err) {
               say("chaos", "the publisher did not stop: %s", natsvisor::describe(err).c_str());
               ran = false;
             });
  self->send_exit(pub, caf::exit_reason::user_shutdown);
  auto missing = count_missing(svc, *book);
  print_status(svc);
  std::printf("\nacknowledged messages:               %zu (%llu duplicate acks)\n",
              book->acked.size(), static_cast<unsigned long long>(book->duplicates));
  std::printf("failed publishes (retried):          %llu\n",
              static_cast<unsigned long long>(book->failures));
  std::printf("no acknowledged message lost:        %s\n", missing < 0    ? "unknown (not checked)"
                                                           : missing == 0 ? "yes"
                                                                          : "NO");
  std::printf("supervisor restarted the connection: %s\n\n", generation >= 2 ? "yes" : "no");
  self->send_exit(w, caf::exit_reason::user_shutdown);
  bool ok = ran && missing == 0 && generation >= 2 && !book->acked.empty();
  say("chaos", ok ? "done: success" : "done: FAILED");
  cfg.exit_with(ok ? 0 : 1);
}

CAF_MAIN(caf::id_block::natsvisor_chaos)
