// service_composition: two services composed through natsvisor::service_manager.
//
//   producer  on init asks the manager for "connection" (by message), ensures the JetStream
//             stream WORK on "work.>" (in a detached helper: JetStream calls block), then on
//             request publishes N jobs with request_js_publish and collects the acks;
//   worker    on init asks for "producer" (so the stream exists) and "connection", then consumes
//             WORK with spawn_pull_consumer (durable "workers") and counts distinct jobs.
//
// The worker is defined first, but it depends on the producer, which depends on the connection
// service: the start order is connection, producer, worker and the stop order its reverse. The
// cleanup handlers print the stop order; an observer prints when the connection service exits.
//
// Usage: service_composition [nats://host:port] [N]
//        (URL else $NATS_URL, else nats://127.0.0.1:4222; N defaults to 100; needs -js)
// Exit status 0 when all N jobs were acknowledged and processed, 1 otherwise.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nats/nats.h>

#include "nats/status.hpp"
#include "caf/all.hpp"

#include "actors/pull_consumer.hpp"
#include "api/connection_service.hpp"
#include "api/requests.hpp"
#include "config/url.hpp"
#include "services/service_manager.hpp"

#include "example_support.hpp"

namespace {

using namespace std::chrono_literals;
using run_atom = caf::atom_constant<caf::atom("run")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using mkstream_atom = caf::atom_constant<caf::atom("mkstream")>;

constexpr const char* stream_name = "WORK";
constexpr const char* stream_subjects = "work.>";
constexpr const char* durable_name = "workers";
constexpr size_t publish_window = 16; ///< js_publish requests in flight at most

// The order in which services were cleaned up (written by actors, read by main).
std::mutex stop_mtx;
std::vector<std::string> stop_order;

void record_stop(const std::string& who, const std::string& what) {
  std::lock_guard<std::mutex> guard{stop_mtx};
  stop_order.push_back(who);
  std::printf("  stop #%zu: %s\n", stop_order.size(), what.c_str());
  std::fflush(stdout);
}

// -- the detached helper: blocking JetStream calls off the scheduler -------------------------

caf::behavior stream_maker(caf::event_based_actor* self, natsvisor::jetstream_handle js) {
  return {
    [self, js](mkstream_atom) -> caf::result<void> {
      self->quit(); // one job; the answer is still delivered
      auto r = natsvisor_examples::ensure_stream(js.get(), stream_name, stream_subjects);
      if (!r.ok()) // "already exists" is fine
        return natsvisor::from_status(r.status, natsvisor::errc::jetstream_error, js.url(),
                                      "js_AddStream " + std::string{stream_name} + " (err_code "
                                        + std::to_string(static_cast<int>(r.jerr)) + ")");
      std::printf("  producer: stream %s on %s ready\n", stream_name, stream_subjects);
      return caf::unit;
    },
  };
}

// -- the producer service ----------------------------------------------------------------------

struct producer_state {
  caf::actor conn; ///< the connection service, handed over by the manager
  std::string run; ///< tags this run's jobs
  int total = 0;
  int next = 1; ///< next job to publish
  size_t in_flight = 0;
  uint64_t acked = 0;
  uint64_t duplicates = 0;
  uint64_t failed = 0;
  std::set<uint64_t> sequences;
  caf::response_promise done;
  static inline const char* name = "example.producer";
};

using producer_actor = caf::stateful_actor<producer_state>;

void pump(producer_actor* self) {
  auto& st = self->state;
  while (st.in_flight < publish_window && st.next <= st.total) {
    int job = st.next++;
    auto subject = "work." + st.run + "." + std::to_string(job);
    natsvisor::outgoing msg{subject, "job " + std::to_string(job), {{"Nats-Msg-Id", subject}}};
    ++st.in_flight;
    natsvisor::request_js_publish(self, st.conn, std::move(msg), 5s)
      .then(
        [self](natsvisor::js_ack& ack) {
          auto& st = self->state;
          --st.in_flight;
          ++st.acked;
          st.duplicates += ack.duplicate ? 1 : 0;
          st.sequences.insert(ack.sequence);
          pump(self);
        },
        [self, subject](caf::error& err) {
          auto& st = self->state;
          --st.in_flight;
          if (st.failed++ == 0)
            std::printf("  producer: publish %s failed: %s\n", subject.c_str(),
                        natsvisor::describe(err).c_str());
          pump(self);
        });
  }
  if (st.in_flight == 0 && st.next > st.total && st.done.pending())
    st.done.deliver(st.acked);
}

caf::behavior producer(producer_actor* self, std::string run) {
  self->state.run = std::move(run);
  return {
    [self](natsvisor::svc_init_atom, caf::actor manager) -> caf::result<void> {
      std::printf("  producer: initializing, asking the manager for \"connection\"\n");
      auto rp = self->make_response_promise();
      auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
      natsvisor::request_service(self, manager, natsvisor::connection_service_name)
        .then(
          [self, rp, fail](caf::actor conn) mutable {
            self->state.conn = conn;
            natsvisor::request_jetstream(self, conn)
              .then(
                [self, rp, fail](natsvisor::jetstream_handle& js) mutable {
                  auto helper = self->spawn<caf::detached>(stream_maker, js);
                  self->request(helper, 30s, mkstream_atom::value)
                    .then([rp]() mutable { rp.deliver(caf::unit); }, fail);
                },
                fail);
          },
          fail);
      return rp;
    },
    [self](run_atom, int n) -> caf::result<uint64_t> {
      auto& st = self->state;
      st.total = n;
      st.next = 1;
      st.done = self->make_response_promise();
      std::printf("  producer: publishing %d jobs with request_js_publish (window %zu)\n", n,
                  publish_window);
      auto rp = st.done;
      pump(self);
      return rp;
    },
    [self](natsvisor::svc_clean_atom) {
      auto& st = self->state;
      record_stop("producer", "producer: cleanup (" + std::to_string(st.acked) + " acked, "
                                + std::to_string(st.sequences.size()) + " distinct sequences, "
                                + std::to_string(st.failed) + " failed)");
    },
  };
}

// -- the worker service ------------------------------------------------------------------------

struct worker_state {
  caf::actor consumer;
  std::string prefix; ///< "work.<run>.": jobs of this run
  std::set<std::string> jobs;
  uint64_t messages = 0;
  uint64_t batches = 0;
  uint64_t stale = 0; ///< messages of earlier runs left in the stream
  static inline const char* name = "example.worker";
};

using worker_actor = caf::stateful_actor<worker_state>;

caf::behavior worker(worker_actor* self, std::string run) {
  self->state.prefix = "work." + run + ".";
  return {
    [self](natsvisor::svc_init_atom, caf::actor manager) -> caf::result<void> {
      std::printf("  worker: initializing, asking the manager for \"producer\" and "
                  "\"connection\"\n");
      auto rp = self->make_response_promise();
      auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
      natsvisor::request_service(self, manager, "producer")
        .then(
          [self, manager, rp, fail](caf::actor) mutable {
            natsvisor::request_service(self, manager, natsvisor::connection_service_name)
              .then(
                [self, rp](caf::actor conn) mutable {
                  natsvisor::pull_consumer_config pc;
                  pc.stream = stream_name;
                  pc.durable = durable_name;
                  pc.filter_subject = stream_subjects;
                  pc.batch = 32;
                  pc.fetch_wait = 200ms;
                  self->state.consumer = natsvisor::spawn_pull_consumer(
                    self->system(), conn, caf::actor_cast<caf::actor>(self), pc);
                  std::printf("  worker: pull consumer '%s' on %s started\n", durable_name,
                              stream_name);
                  rp.deliver(caf::unit);
                },
                fail);
          },
          fail);
      return rp;
    },
    // A batch from the pull consumer: the empty reply acknowledges it.
    [self](std::vector<natsvisor::nats_message>& batch) {
      auto& st = self->state;
      ++st.batches;
      for (auto& m : batch) {
        ++st.messages;
        if (m.subject.rfind(st.prefix, 0) == 0)
          st.jobs.insert(m.subject);
        else
          ++st.stale;
      }
    },
    [self](count_atom) { return static_cast<uint64_t>(self->state.jobs.size()); },
    [self](natsvisor::svc_clean_atom) {
      auto& st = self->state;
      self->send_exit(st.consumer, caf::exit_reason::user_shutdown);
      record_stop("worker", "worker: cleanup, pull consumer stopped ("
                              + std::to_string(st.jobs.size()) + " distinct jobs in "
                              + std::to_string(st.messages) + " messages, "
                              + std::to_string(st.batches) + " batches, " + std::to_string(st.stale)
                              + " from earlier runs)");
    },
  };
}

// Records when the connection service (started and stopped by the manager) exits.
caf::behavior observer(caf::event_based_actor* self, caf::actor conn) {
  self->monitor(conn);
  self->set_down_handler([self](caf::down_msg&) {
    record_stop("connection", "connection: the connection service exited");
    self->quit();
  });
  return {[](caf::unit_t) {}};
}

} // namespace

int main(int argc, char** argv) {
  std::string url = natsvisor_examples::url_from(argc, argv);
  int n = argc > 2 ? std::atoi(argv[2]) : 100;
  if (n < 1)
    n = 1;
  std::string run = "r" + std::to_string(getpid());

  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  natsvisor::settings s;
  s.nats_url = url;
  s.request_timeout = 5s;
  s.connection_timeout = 2s;
  s.log_level = "warn";
  std::printf("service_composition: %d jobs through %s (run %s)\n\n", n,
              natsvisor::redact(url).c_str(), run.c_str());

  std::vector<natsvisor::service_definition> defs{
    {"worker",
     [run](caf::actor_system& sys, const natsvisor::settings&) { return sys.spawn(worker, run); },
     true},
    {"producer",
     [run](caf::actor_system& sys, const natsvisor::settings&) { return sys.spawn(producer, run); },
     true},
  };

  bool ok = false;
  caf::actor watcher;
  try {
    std::printf("== starting the service manager (eager: worker, producer) ==\n");
    natsvisor::service_manager mgr{sys, s, defs};
    std::string order;
    for (auto& name : mgr.started())
      order += (order.empty() ? "" : ", ") + name;
    std::printf("started, in start order: %s\n\n", order.c_str());

    auto conn = mgr.get(natsvisor::connection_service_name);
    auto prod = mgr.get("producer");
    auto work = mgr.get("worker");
    if (!conn || !prod || !work) {
      std::printf("FAILED: a service is missing\n");
      return 1;
    }
    watcher = sys.spawn(observer, *conn);

    std::printf("== running ==\n");
    caf::scoped_actor self{sys};
    uint64_t acked = 0;
    self->request(*prod, 60s, run_atom::value, n)
      .receive([&](uint64_t x) { acked = x; },
               [&](caf::error& err) {
                 std::printf("  producer failed: %s\n", natsvisor::describe(err).c_str());
               });
    std::printf("  producer: %llu of %d jobs acknowledged by JetStream\n",
                static_cast<unsigned long long>(acked), n);

    uint64_t processed = 0;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (processed < static_cast<uint64_t>(n) && std::chrono::steady_clock::now() < deadline) {
      self->request(*work, 5s, count_atom::value)
        .receive([&](uint64_t x) { processed = x; }, [](caf::error&) {});
      if (processed < static_cast<uint64_t>(n))
        std::this_thread::sleep_for(50ms);
    }
    std::printf("  worker: %llu of %d distinct jobs processed%s\n\n",
                static_cast<unsigned long long>(processed), n,
                processed < static_cast<uint64_t>(n) ? " (deadline passed)" : "");
    ok = acked == static_cast<uint64_t>(n) && processed == static_cast<uint64_t>(n);

    std::printf("== leaving the service_manager scope: reverse start order ==\n");
  } catch (const natsvisor::service_error& e) {
    std::printf("FAILED: the service manager did not start: %s\n", e.what());
    return 1;
  }
  // The manager is gone; wait for the observer to have seen the connection service exit.
  if (watcher) {
    caf::scoped_actor self{sys};
    self->monitor(watcher);
    self->receive([](caf::down_msg&) {},
                  caf::after(5s) >>
                    [] { std::printf("  (the connection service did not exit within 5 s)\n"); });
  }
  std::string order;
  for (auto& name : stop_order)
    order += (order.empty() ? "" : ", ") + name;
  bool reversed = stop_order == std::vector<std::string>{"worker", "producer", "connection"};
  std::printf("stop order: %s (%s)\n", order.c_str(),
              reversed ? "reverse of the start order" : "UNEXPECTED");
  ok = ok && reversed;
  std::printf("\n%s\n", ok ? "done: success" : "done: FAILED");
  return ok ? 0 : 1;
}
