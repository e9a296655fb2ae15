#pragma once

// The demo's service actor and its own atoms. It talks to the connection service through the
// typed protocol (api/protocol.hpp): natsvisor::ask with connection_api checks the request and
// the answer handler at compile time.

#include <string>
#include <tuple>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/protocol.hpp"
#include "example_support.hpp"

// The demo's atoms, in a type-ID block of their own after natsvisor's (CAF_MAIN loads it).
// clang-format off
CAF_BEGIN_TYPE_ID_BLOCK(natsvisor_demo, caf::id_block::natsvisor::end)
  CAF_ADD_ATOM(natsvisor_demo, demo, tick_atom, "tick")
  CAF_ADD_ATOM(natsvisor_demo, demo, report_atom, "report")
CAF_END_TYPE_ID_BLOCK(natsvisor_demo)
// clang-format on

namespace demo {

struct worker_state {
  uint64_t ok = 0;     ///< publishes nats.c accepted (buffered while it reconnects)
  uint64_t failed = 0; ///< no handle in time, or nats.c refused the publish
  uint64_t generation = 0;
  std::string last_error;
  static inline const char* name = "demo.worker";
};

/// Every ~100 ms asks the service for the shared connection by message and publishes one small
/// message on it. The next tick is scheduled once the answer arrived, so while the service
/// parks requests (the connection is restarting) at most one request is outstanding.
inline caf::behavior worker(caf::stateful_actor<worker_state>* self, natsvisor::connection_api svc,
                            int id) {
  using natsvisor_examples::say;
  auto who = "actor " + std::to_string(id);
  auto next = [self] { self->delayed_send(self, std::chrono::milliseconds{100}, tick_atom_v); };
  auto fail = [self, who](std::string why) {
    ++self->state.failed;
    if (why != self->state.last_error) // each new kind of failure once
      say(who.c_str(), "failed: %s", why.c_str());
    self->state.last_error = std::move(why);
  };
  self->send(self, tick_atom_v);
  return {
    [=](tick_atom) {
      natsvisor::ask(self, svc, natsvisor::get_conn_atom_v, std::string{}) // "": the default URL
        .then(
          [=](const natsvisor::connection_handle& conn) {
            auto& st = self->state;
            if (conn.generation() != st.generation) {
              say(who.c_str(), "using connection generation %llu",
                  static_cast<unsigned long long>(conn.generation()));
              st.generation = conn.generation();
            }
            auto subject = "demo.actor." + std::to_string(id);
            // Non-blocking: nats.c copies into its buffer (also while it reconnects).
            natsStatus s = natsConnection_PublishString(conn.get(), subject.c_str(), "hello");
            if (s == NATS_OK) {
              ++st.ok;
              st.last_error.clear();
            } else {
              fail(std::string{"publish: "} + natsStatus_GetText(s));
            }
            next();
          },
          [=](caf::error& err) {
            fail(natsvisor::describe(err));
            next();
          });
    },
    [self](report_atom) { return std::make_tuple(self->state.ok, self->state.failed); },
  };
}

} // namespace demo
