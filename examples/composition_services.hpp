#pragma once

// The two services of service_composition.cpp. A service answers the manager's svc_init (with
// the manager's handle, to ask it for other services) and svc_clean. Both ask through the typed
// protocols of api/protocol.hpp: service_manager_api for services, connection_api for NATS.
//
//   producer  needs "connection"; on init makes sure the stream WORK exists (js_AddStream
//             blocks, so the producer is spawned detached: it blocks its own thread only); on
//             `run` publishes N jobs with js_pub requests and answers with the number acked.
//   worker    needs "producer" (so the stream exists) and "connection"; consumes WORK with a
//             pull consumer and answers `count` with the number of distinct jobs of this run.

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "caf/all.hpp"

#include "actors/pull_consumer.hpp"
#include "api/protocol.hpp"
#include "example_support.hpp"

// The example's atoms, in a type-ID block of their own after natsvisor's (CAF_MAIN loads it).
// clang-format off
CAF_BEGIN_TYPE_ID_BLOCK(natsvisor_composition, caf::id_block::natsvisor::end)
  CAF_ADD_ATOM(natsvisor_composition, composition, run_atom, "run")
  CAF_ADD_ATOM(natsvisor_composition, composition, count_atom, "count")
CAF_END_TYPE_ID_BLOCK(natsvisor_composition)
// clang-format on

namespace composition {

using namespace std::chrono_literals;
using natsvisor_examples::say;

/// Asks the manager for the service `name` (started first if it is not running yet).
inline auto need(caf::event_based_actor* self, const caf::actor& manager, std::string name) {
  auto typed = caf::actor_cast<natsvisor::service_manager_api>(manager);
  return natsvisor::ask(self, typed, natsvisor::get_svc_atom_v, std::move(name));
}

/// Spawn it detached: its initialize blocks for js_AddStream.
inline caf::behavior producer(caf::event_based_actor* self, std::string prefix) {
  auto conn = std::make_shared<natsvisor::connection_api>();
  return {
    [=](natsvisor::svc_init_atom, const caf::actor& manager) -> caf::result<void> {
      auto rp = self->make_response_promise();
      auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
      need(self, manager, "connection")
        .then(
          [=](const caf::actor& svc) mutable {
            *conn = natsvisor::as_connection_api(svc);
            natsvisor::ask(self, *conn, natsvisor::get_js_atom_v, std::string{})
              .then(
                [=](const natsvisor::jetstream_handle& js) mutable {
                  auto err = natsvisor_examples::ensure_stream(js, "WORK", "work.>");
                  say("producer", "initialized: stream WORK %s", err ? "FAILED" : "ready");
                  if (err)
                    rp.deliver(std::move(err));
                  else
                    rp.deliver(caf::unit);
                },
                fail);
          },
          fail);
      return rp;
    },
    [=](run_atom, int n) -> caf::result<int> {
      auto rp = self->make_response_promise();
      auto answered = std::make_shared<int>(0);
      auto acked = std::make_shared<int>(0);
      auto done = [=]() mutable {
        if (++*answered == n)
          rp.deliver(*acked);
      };
      for (int job = 1; job <= n; ++job) {
        natsvisor::outgoing msg{prefix + std::to_string(job), "job " + std::to_string(job), {}};
        natsvisor::ask(self, *conn, natsvisor::js_pub_atom_v, std::string{}, std::move(msg),
                       caf::timespan{5s})
          .then(
            [=](const natsvisor::js_ack&) mutable {
              ++*acked;
              done();
            },
            [=](caf::error&) mutable { done(); });
      }
      return rp;
    },
    [](natsvisor::svc_clean_atom) { say("producer", "cleaned up"); },
  };
}

struct worker_state {
  caf::actor consumer;
  std::set<std::string> jobs; ///< subjects of this run's jobs seen
  static inline const char* name = "example.worker";
};

inline caf::behavior worker(caf::stateful_actor<worker_state>* self, std::string prefix) {
  return {
    [self](natsvisor::svc_init_atom, const caf::actor& manager) -> caf::result<void> {
      auto rp = self->make_response_promise();
      auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
      need(self, manager, "producer")
        .then(
          [=](const caf::actor&) mutable {
            need(self, manager, "connection")
              .then(
                [=](const caf::actor& svc) mutable {
                  natsvisor::pull_consumer_config pc;
                  pc.stream = "WORK";
                  pc.durable = "workers";
                  pc.filter_subject = "work.>";
                  pc.fetch_wait = 200ms;
                  self->state.consumer = natsvisor::spawn_pull_consumer(
                    self->system(), svc, caf::actor_cast<caf::actor>(self), pc);
                  say("worker", "initialized: pull consumer 'workers' on WORK");
                  rp.deliver(caf::unit);
                },
                fail);
          },
          fail);
      return rp;
    },
    // A batch from the pull consumer; the empty answer acknowledges it.
    [self, prefix](const std::vector<natsvisor::nats_message>& batch) {
      for (auto& m : batch)
        if (m.subject.rfind(prefix, 0) == 0) // not a job of an earlier run
          self->state.jobs.insert(m.subject);
    },
    [self](count_atom) { return static_cast<int>(self->state.jobs.size()); },
    [self](natsvisor::svc_clean_atom) {
      self->send_exit(self->state.consumer, caf::exit_reason::user_shutdown);
      say("worker", "cleaned up: pull consumer stopped");
    },
  };
}

} // namespace composition
