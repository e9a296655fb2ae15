// natsvisor_demo: supervised NATS connections surviving server crashes, in under 30 seconds.
//
// What it does:
//  1. reads natsvisor's configuration from the command line (--natsvisor.<key>=<value>, see
//     --long-help) and picks demo-friendly timing for the keys not given;
//  2. looks for a NATS server on the configured host:port and, if none listens there, starts
//     /usr/sbin/nats-server itself (JetStream on, store in a temporary directory);
//  3. starts the connection service, a watcher printing every state change, and 3 service
//     actors that each ask for a connection handle by message every ~100 ms and publish on it;
//  4. if it owns the server: SIGKILLs it and restarts it after ~1 s (nats.c reconnects by
//     itself), then kills it again for longer than nats.c's reconnect budget so that the
//     connection is closed for good and the supervisor's restart path takes over;
//  5. prints a status table and per-actor counts, stops everything, removes its temp dir.
//
// Exit status: 0 on success, 1 on failure, 2 on invalid configuration.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "api/requests.hpp"
#include "config/url.hpp"
#include "example_support.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using report_atom = caf::atom_constant<caf::atom("report")>;

std::atomic<bool> interrupted{false};

using natsvisor_examples::endpoint;
using natsvisor_examples::listens;
using natsvisor_examples::ms;
using natsvisor_examples::owned_server;
using natsvisor_examples::parse_endpoint;

// -- output ----------------------------------------------------------------------------------

// One line at a time from any thread (actors print too), with the time since start.
const natsvisor_examples::line_printer say{8};

// Sleeps `d`, waking early (and returning false) on Ctrl-C.
bool nap(caf::timespan d) {
  auto until = clock_type::now() + d;
  while (clock_type::now() < until) {
    if (interrupted)
      return false;
    std::this_thread::sleep_for(std::min<clock_type::duration>(20ms, until - clock_type::now()));
  }
  return !interrupted;
}

// -- actors ----------------------------------------------------------------------------------

// Prints one timestamped line per state change of any URL.
caf::behavior watcher(caf::event_based_actor*) {
  return {
    [](const natsvisor::state_changed& ev) {
      say("watcher", "%s  %-12s generation %llu%s%s", ev.url.c_str(),
          natsvisor::to_string(ev.state), static_cast<unsigned long long>(ev.generation),
          ev.detail.empty() ? "" : "  -- ", ev.detail.c_str());
    },
  };
}

struct worker_state {
  uint64_t ok = 0;     ///< publishes nats.c accepted (buffered while it reconnects)
  uint64_t failed = 0; ///< no handle in time, or nats.c refused the publish
  uint64_t generation = 0;
  std::string last_error;
  static inline const char* name = "demo.worker";
};

// A service actor: every ~100 ms asks the connection service for a handle by message and
// publishes one small message on it. The next tick is scheduled once the answer arrived, so
// while the service parks requests (connection restarting) at most one is outstanding.
caf::behavior worker(caf::stateful_actor<worker_state>* self, caf::actor svc, int id) {
  auto next = [self] { self->delayed_send(self, 100ms, tick_atom::value); };
  auto fail = [self, id](std::string why) {
    ++self->state.failed;
    if (why != self->state.last_error) // print each new kind of failure once
      say(("actor " + std::to_string(id)).c_str(), "failed: %s", why.c_str());
    self->state.last_error = std::move(why);
  };
  self->send(self, tick_atom::value);
  return {
    [self, svc, id, next, fail](tick_atom) {
      natsvisor::request_connection(self, svc).then(
        [self, id, next, fail](const natsvisor::connection_handle& conn) {
          if (conn.generation() != self->state.generation) {
            say(("actor " + std::to_string(id)).c_str(), "using connection generation %llu",
                static_cast<unsigned long long>(conn.generation()));
            self->state.generation = conn.generation();
          }
          auto subject = "demo.actor." + std::to_string(id);
          auto payload = "message " + std::to_string(self->state.ok + self->state.failed + 1);
          // Non-blocking: nats.c copies into its buffer (also while it reconnects).
          natsStatus s = natsConnection_PublishString(conn.get(), subject.c_str(), payload.c_str());
          if (s == NATS_OK) {
            ++self->state.ok;
            self->state.last_error.clear();
          } else {
            fail(std::string{"publish: "} + natsStatus_GetText(s));
          }
          next();
        },
        [next, fail](caf::error& err) {
          fail(natsvisor::describe(err));
          next();
        });
    },
    [self](report_atom) { return std::make_tuple(self->state.ok, self->state.failed); },
  };
}

// -- configuration -----------------------------------------------------------------------------

bool given(const caf::actor_system_config& cfg, const char* key) {
  auto it = cfg.content.find(natsvisor::config_group);
  if (it == cfg.content.end())
    return false;
  auto group = caf::get_if<caf::settings>(&it->second);
  return group != nullptr && group->count(caf::string_view{key, std::strlen(key)}) != 0;
}

void on_signal(int) {
  interrupted = true;
}

// Polls the service until the default URL is connected, or the deadline passes.
bool wait_connected(natsvisor::connection_service& svc, caf::timespan deadline) {
  auto until = clock_type::now() + deadline;
  while (clock_type::now() < until && !interrupted) {
    if (auto st = svc.status(); st)
      for (auto& u : *st)
        if (u.state == natsvisor::connection_state::connected)
          return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

void print_status(natsvisor::connection_service& svc) {
  auto st = svc.status();
  if (!st) {
    std::printf("status unavailable: %s\n", natsvisor::describe(st.error()).c_str());
    return;
  }
  std::printf("\n%-28s %-12s %4s %8s %10s %8s %8s  %s\n", "url", "state", "gen", "restarts",
              "reconnects", "in_msgs", "out_msgs", "last error");
  for (auto& u : *st)
    std::printf(
      "%-28s %-12s %4llu %8llu %10llu %8llu %8llu  %s\n", u.url.c_str(),
      natsvisor::to_string(u.state), static_cast<unsigned long long>(u.generation),
      static_cast<unsigned long long>(u.restarts), static_cast<unsigned long long>(u.reconnects),
      static_cast<unsigned long long>(u.in_msgs), static_cast<unsigned long long>(u.out_msgs),
      u.last_error.empty() ? "-" : u.last_error.c_str());
}

} // namespace

int main(int argc, char** argv) {
  natsvisor::config cfg;
  if (auto err = cfg.parse(argc, argv)) {
    std::fprintf(stderr, "natsvisor_demo: invalid command line: %s\n", caf::to_string(err).c_str());
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  auto parsed = natsvisor::parse_settings(cfg);
  if (!parsed) {
    std::fprintf(stderr, "natsvisor_demo: %s\n", natsvisor::describe(parsed.error()).c_str());
    return 2;
  }
  natsvisor::settings s = std::move(*parsed);
  // Demo-friendly timing (seconds instead of minutes), unless given on the command line.
  if (!given(cfg, "nats_reconnect_wait"))
    s.nats.reconnect_wait = 200ms;
  // 10 x 200 ms (+ jitter) ~ 2-3 s: enough for nats.c to ride out the 1 s outage by itself.
  if (!given(cfg, "nats_max_reconnect"))
    s.nats.max_reconnect = 10;
  if (!given(cfg, "reconnect_delay"))
    s.policy.base_delay = 500ms;
  if (!given(cfg, "request_timeout"))
    s.request_timeout = 5s;
  if (!given(cfg, "connection_timeout"))
    s.connection_timeout = 2s;
  if (!given(cfg, "log_level"))
    s.log_level = "warn"; // the watcher shows the lifecycle; --natsvisor.log_level=info for more
  if (s.policy.max_delay < s.policy.base_delay)
    s.policy.max_delay = s.policy.base_delay;

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto ep = parse_endpoint(s.nats_url);
  // The demo kills and restarts servers: it only ever talks to this machine.
  if (ep.host != "localhost" && ep.host != "127.0.0.1") {
    say("demo",
        "the demo runs against a server on this machine only (localhost or 127.0.0.1), "
        "not %s",
        natsvisor::redact(s.nats_url).c_str());
    return 1;
  }
  say("demo", "URL %s (probing %s:%d)", natsvisor::redact(s.nats_url).c_str(), ep.host.c_str(),
      ep.port);
  say("demo",
      "timing: nats_reconnect_wait %lld ms, nats_max_reconnect %d, reconnect_delay %lld ms, "
      "request_timeout %lld ms",
      ms(s.nats.reconnect_wait), s.nats.max_reconnect, ms(s.policy.base_delay),
      ms(s.request_timeout));

  std::unique_ptr<owned_server> server;
  if (listens(ep)) {
    say("demo",
        "a server already listens on %s:%d: using it. It is not ours, so the demo will "
        "not kill it (the crash/restart part is skipped).",
        ep.host.c_str(), ep.port);
  } else {
    if (access(owned_server::binary, X_OK) != 0) {
      say("demo", "nothing listens on %s:%d and %s is missing (run scripts/setup)", ep.host.c_str(),
          ep.port, owned_server::binary);
      return 1;
    }
    try {
      server = std::make_unique<owned_server>(
        ep.port, [](const std::string& line) { say("demo", "%s", line.c_str()); });
    } catch (const std::exception& e) {
      say("demo", "%s", e.what());
      return 1;
    }
    say("demo", "nothing listens on %s:%d: starting %s -a 127.0.0.1 -p %d -js -sd %s/jetstream",
        ep.host.c_str(), ep.port, owned_server::binary, ep.port, server->dir().c_str());
    if (!server->start())
      return 1;
    say("demo", "nats-server pid %d is up (log: %s)", server->pid(), server->log_file().c_str());
  }

  int rc = 0;
  {
    caf::actor_system sys{cfg};
    natsvisor::connection_service svc{sys, s};
    auto w = sys.spawn(watcher);
    svc.watch(w);
    std::vector<caf::actor> workers;
    for (int id = 1; id <= 3; ++id)
      workers.push_back(sys.spawn(worker, svc.actor(), id));
    say("demo", "service, watcher and 3 service actors started");

    bool ok = wait_connected(svc, s.request_timeout) && nap(3s);
    if (ok && server) {
      // Outage 1: short. nats.c reconnects inside the same connection (same generation).
      say("demo", "SIGKILL nats-server (pid %d); restarting it in 1 s", server->pid());
      server->kill();
      ok = nap(1s) && server->start();
      if (ok)
        say("demo", "nats-server is back (pid %d)", server->pid());
      ok = ok && wait_connected(svc, 5s) && nap(1500ms);

      // Outage 2: longer than nats.c's whole reconnect budget, so the connection closes for
      // good and the supervisor starts fresh connection actors (new generations).
      auto budget = s.nats.max_reconnect * s.nats.reconnect_wait;
      auto down = std::min<caf::timespan>(budget + 2s, 12s);
      if (ok) {
        say("demo",
            "SIGKILL nats-server (pid %d); keeping it down %lld ms (%d x %lld ms + 2 s) "
            "so nats.c gives up and the supervisor restarts the connection",
            server->pid(), ms(down), s.nats.max_reconnect, ms(s.nats.reconnect_wait));
        server->kill();
        ok = nap(down) && server->start();
      }
      if (ok) {
        say("demo", "nats-server is back (pid %d)", server->pid());
        ok = wait_connected(svc, 10s);
        if (!ok && !interrupted)
          say("demo", "the connection did not come back within 10 s");
      }
      ok = ok && nap(2s);
    } else if (ok) {
      ok = nap(2s);
    } else if (!interrupted) {
      say("demo", "no connection within %lld ms", ms(s.request_timeout));
    }
    if (interrupted)
      say("demo", "interrupted: cleaning up");

    print_status(svc);
    std::printf("\n%-8s %10s %8s\n", "actor", "published", "failed");
    caf::scoped_actor self{sys};
    bool every_actor_published = true;
    for (size_t i = 0; i < workers.size(); ++i) {
      self->request(workers[i], 5s, report_atom::value)
        .receive(
          [&](uint64_t published, uint64_t failed) {
            std::printf("%-8zu %10llu %8llu\n", i + 1, static_cast<unsigned long long>(published),
                        static_cast<unsigned long long>(failed));
            every_actor_published = every_actor_published && published > 0;
          },
          [&](caf::error& err) {
            std::printf("%-8zu no report: %s\n", i + 1, natsvisor::describe(err).c_str());
            every_actor_published = false;
          });
    }
    std::printf("(published = accepted by nats.c; while it reconnects it buffers them, and a\n"
                " connection closed for good drops its buffer)\n\n");
    std::fflush(stdout);
    for (auto& x : workers)
      self->send_exit(x, caf::exit_reason::user_shutdown);
    self->send_exit(w, caf::exit_reason::user_shutdown);
    svc.stop();
    rc = ok && every_actor_published ? 0 : 1;
  }
  if (server) {
    say("demo", "stopping nats-server (pid %d), removing %s", server->pid(), server->dir().c_str());
    server.reset();
  }
  say("demo", rc == 0 ? "done: success" : "done: FAILED");
  return interrupted ? 130 : rc;
}
