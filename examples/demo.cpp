// natsvisor_demo: supervised NATS connections surviving server crashes, in about 12 seconds.
//
//  1. reads natsvisor's settings from the command line (--natsvisor.<key>=<value>, see --help),
//     with demo-friendly timing for the keys not given;
//  2. uses the nats-server listening at the URL, or starts one (examples/local_server.hpp);
//  3. starts the connection service, a watcher printing every state change, and 3 service
//     actors (demo_worker.hpp) that ask for a connection by message and publish every 100 ms;
//  4. if the server is its own: SIGKILLs it for 1 s (nats.c reconnects inside the connection),
//     then for longer than nats.c's reconnect budget (nats.c closes the connection for good and
//     the supervisor starts a fresh one: a new generation);
//  5. prints the status table and per-actor counts, stops everything, removes its temp dir.
//
// Run it with scripts/demo. Exit status 0 on success, 1 on failure, 2 on invalid settings.

#include <algorithm>
#include <cstdio>
#include <vector>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "config/url.hpp"
#include "demo_worker.hpp"
#include "example_support.hpp"
#include "local_server.hpp"

using namespace std::chrono_literals;
using namespace natsvisor_examples;

namespace {

// Outage 1 is shorter than nats.c's reconnect budget, outage 2 longer.
bool two_outages(local_server& server, natsvisor::connection_service& svc,
                 const natsvisor::settings& s) {
  say("demo", "SIGKILL nats-server (pid %d); restarting it in 1 s", server.pid());
  server.kill();
  if (!nap(1s) || !server.start())
    return false;
  say("demo", "nats-server is back (pid %d)", server.pid());
  if (wait_connected(svc, 1, 5s) == 0 || !nap(1500ms))
    return false;
  auto down = std::min<caf::timespan>(s.nats.max_reconnect * s.nats.reconnect_wait + 2s, 12s);
  say("demo",
      "SIGKILL nats-server (pid %d); keeping it down %lld ms (%d x %lld ms + 2 s) so nats.c "
      "gives up and the supervisor restarts the connection",
      server.pid(), ms(down), s.nats.max_reconnect, ms(s.nats.reconnect_wait));
  server.kill();
  if (!nap(down) || !server.start())
    return false;
  say("demo", "nats-server is back (pid %d)", server.pid());
  if (wait_connected(svc, 1, 10s) == 0) {
    say("demo", "the connection did not come back within 10 s");
    return false;
  }
  return nap(2s);
}

// Demo-friendly timing (seconds instead of minutes) for the keys the command line left out.
void demo_timing(const caf::actor_system_config& cfg, natsvisor::settings& s) {
  if (!given(cfg, "nats_reconnect_wait"))
    s.nats.reconnect_wait = 200ms;
  if (!given(cfg, "nats_max_reconnect")) // 10 x 200 ms: nats.c rides out a 1 s outage alone
    s.nats.max_reconnect = 10;
  if (!given(cfg, "reconnect_delay"))
    s.policy.base_delay = 500ms;
  if (!given(cfg, "request_timeout"))
    s.request_timeout = 5s;
  if (!given(cfg, "connection_timeout"))
    s.connection_timeout = 2s;
  s.policy.max_delay = std::max(s.policy.max_delay, s.policy.base_delay);
}

// Prints each actor's counts; true if every one of them published.
bool report(caf::actor_system& sys, const std::vector<caf::actor>& workers) {
  std::printf("\n%-8s %10s %8s\n", "actor", "published", "failed");
  caf::scoped_actor self{sys};
  bool all = true;
  for (size_t i = 0; i < workers.size(); ++i)
    self->request(workers[i], 5s, demo::report_atom_v)
      .receive(
        [&](uint64_t published, uint64_t failed) {
          std::printf("%-8zu %10llu %8llu\n", i + 1, static_cast<unsigned long long>(published),
                      static_cast<unsigned long long>(failed));
          all = all && published > 0;
        },
        [&](caf::error& err) {
          std::printf("%-8zu no report: %s\n", i + 1, natsvisor::describe(err).c_str());
          all = false;
        });
  std::printf("(published = accepted by nats.c; while it reconnects it buffers them, and a\n"
              " connection closed for good drops its buffer)\n\n");
  return all;
}

} // namespace

void caf_main(caf::actor_system& sys, const natsvisor_examples::config& cfg) {
  auto s = settings_from(cfg);
  if (!s)
    return cfg.exit_with(2);
  demo_timing(cfg, *s);
  catch_interrupts();
  say("demo",
      "URL %s; nats_reconnect_wait %lld ms, nats_max_reconnect %d, reconnect_delay %lld ms, "
      "request_timeout %lld ms",
      natsvisor::redact(s->nats_url).c_str(), ms(s->nats.reconnect_wait), s->nats.max_reconnect,
      ms(s->policy.base_delay), ms(s->request_timeout));
  auto server = ensure_server(s->nats_url);
  if (!server.ok)
    return cfg.exit_with(1);
  if (!server.owned)
    say("demo", "the server is not ours: the crash/restart part is skipped");
  bool ok = false;
  bool published = false;
  {
    natsvisor::connection_service svc{sys, *s};
    auto w = sys.spawn(watcher);
    svc.watch(w);
    std::vector<caf::actor> workers;
    for (int id = 1; id <= 3; ++id)
      workers.push_back(sys.spawn(demo::worker, svc.api(), id));
    say("demo", "service, watcher and 3 service actors started");
    ok = wait_connected(svc, 1, s->request_timeout) != 0 && nap(3s);
    if (!ok && !interrupted())
      say("demo", "no connection within %lld ms", ms(s->request_timeout));
    else if (ok)
      ok = server.owned ? two_outages(*server.owned, svc, *s) : nap(2s);
    if (interrupted())
      say("demo", "interrupted: cleaning up");
    print_status(svc);
    published = report(sys, workers);
    for (auto& x : workers)
      caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  } // the service stops: every connection is closed
  if (server.owned) {
    say("demo", "stopping nats-server (pid %d), removing %s", server.owned->pid(),
        server.owned->dir().c_str());
    server.owned.reset();
  }
  bool success = ok && published;
  say("demo", success ? "done: success" : "done: FAILED");
  cfg.exit_with(interrupted() ? 130 : success ? 0 : 1);
}

CAF_MAIN(caf::id_block::natsvisor_demo)
