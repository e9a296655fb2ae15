// service_composition: a producer and a worker composed through natsvisor::service_manager.
//
// The services (composition_services.hpp) never name each other's actors: each asks the
// manager for what it needs during its initialize. The worker is defined first, but it needs
// the producer, which needs the connection service; so the manager starts connection, producer,
// worker, in that order, and stops them in the reverse order when it goes out of scope.
//
// Usage: service_composition [--natsvisor.nats_url=nats://127.0.0.1:PORT]
//        (else $NATS_URL, else nats://localhost:4222; a server is started there if none listens)
// Exit status 0 when all jobs were acknowledged by JetStream and processed by the worker.

#include <chrono>
#include <string>
#include <vector>

#include <unistd.h>

#include "caf/all.hpp"

#include "composition_services.hpp"
#include "config/url.hpp"
#include "example_support.hpp"
#include "services/service_manager.hpp"

using namespace std::chrono_literals;
using namespace natsvisor_examples;

namespace {

constexpr int job_count = 100;

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (auto& name : names)
    out += (out.empty() ? "" : ", ") + name;
  return out;
}

// Asks the worker how many jobs it processed until all are, or `deadline` passed.
int await_processed(caf::scoped_actor& self, const caf::actor& worker, caf::timespan deadline) {
  int processed = 0;
  for (auto until = std::chrono::steady_clock::now() + deadline;
       processed < job_count && std::chrono::steady_clock::now() < until;) {
    self->request(worker, 5s, composition::count_atom_v)
      .receive([&](int n) { processed = n; }, [](caf::error&) {});
    if (processed < job_count)
      nap(50ms);
  }
  return processed;
}

} // namespace

void caf_main(caf::actor_system& sys, const natsvisor_examples::config& cfg) {
  auto start = prepare(cfg);
  if (!start)
    return;
  auto* s = &start->settings;
  // This run's jobs: the stream may hold jobs of earlier runs on a server that was reused.
  auto prefix = "work.r" + std::to_string(getpid()) + ".";
  std::vector<natsvisor::service_definition> defs{
    {"worker",
     [prefix](caf::actor_system& sys, const natsvisor::settings&) {
       return sys.spawn(composition::worker, prefix);
     },
     true},
    {"producer",
     [prefix](caf::actor_system& sys, const natsvisor::settings&) {
       return sys.spawn<caf::detached>(composition::producer, prefix);
     },
     true},
  };
  bool ok = false;
  try {
    say("main", "starting the service manager with worker and producer (both eager)");
    natsvisor::service_manager mgr{sys, *s, defs};
    say("main", "started, in start order: %s", joined(mgr.started()).c_str());
    auto producer = mgr.get("producer");
    auto worker = mgr.get("worker");
    if (!producer || !worker) {
      say("main", "FAILED: a service is missing");
      return cfg.exit_with(1);
    }
    caf::scoped_actor self{sys};
    int acked = 0;
    self->request(*producer, 60s, composition::run_atom_v, job_count)
      .receive([&](int n) { acked = n; },
               [&](caf::error& err) {
                 say("main", "the producer failed: %s", natsvisor::describe(err).c_str());
               });
    say("main", "producer: %d of %d jobs acknowledged by JetStream", acked, job_count);
    int processed = await_processed(self, *worker, 20s);
    say("main", "worker: %d of %d jobs processed", processed, job_count);
    ok = acked == job_count && processed == job_count;
    say("main", "leaving the manager's scope: stops in reverse start order");
  } catch (const natsvisor::service_error& e) {
    say("main", "FAILED: the service manager did not start: %s", e.what());
    return cfg.exit_with(1);
  }
  say("main", ok ? "done: success" : "done: FAILED");
  cfg.exit_with(ok ? 0 : 1);
}

CAF_MAIN(caf::id_block::natsvisor_composition)
