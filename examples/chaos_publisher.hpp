#pragma once

// The chaos example's publisher: JetStream publishes, one at a time, through the message path
// (natsvisor::ask with connection_api), each recorded in a ledger once acknowledged. A publish
// that fails (timeout, connection closed, ...) was never acknowledged and is retried; each
// carries a Nats-Msg-Id, so a retry of a message that was stored but whose ack was lost is
// deduplicated by the server (its ack says "duplicate").

#include <map>
#include <memory>
#include <string>

#include "caf/all.hpp"

#include "api/protocol.hpp"
#include "example_support.hpp"

// The example's atoms, in a type-ID block of their own after natsvisor's (CAF_MAIN loads it).
// clang-format off
CAF_BEGIN_TYPE_ID_BLOCK(natsvisor_chaos, caf::id_block::natsvisor::end)
  CAF_ADD_ATOM(natsvisor_chaos, chaos, tick_atom, "tick")
  CAF_ADD_ATOM(natsvisor_chaos, chaos, stop_atom, "stop")
CAF_END_TYPE_ID_BLOCK(natsvisor_chaos)
// clang-format on

namespace chaos {

/// What the publisher saw; main reads it once the publisher answered `stop`.
struct ledger {
  std::map<uint64_t, uint64_t> acked; ///< job -> the stream sequence of its ack
  uint64_t duplicates = 0;            ///< acks of retries whose first try was stored
  uint64_t failures = 0;              ///< publishes that failed and were retried
};

inline std::string subject_of(uint64_t job) {
  return "chaos." + std::to_string(job);
}

struct publisher_state {
  uint64_t job = 1; ///< the job in flight, or the next one
  bool in_flight = false;
  bool stopping = false;         ///< `stop` arrived: publish nothing more
  caf::response_promise stopped; ///< answers `stop`
  std::string last_error;
  static inline const char* name = "chaos.publisher";
};

/// Publishes job 1, 2, ... until `stop`, which it answers once no publish is in flight.
inline caf::behavior publisher(caf::stateful_actor<publisher_state>* self,
                               natsvisor::connection_api svc, std::shared_ptr<ledger> book) {
  using natsvisor_examples::say;
  self->send(self, tick_atom_v);
  return {
    [=](tick_atom) {
      auto& st = self->state;
      if (st.stopping) {
        if (st.stopped.pending())
          st.stopped.deliver(caf::unit);
        return;
      }
      auto subject = subject_of(st.job);
      natsvisor::outgoing msg{subject, "payload of " + subject, {{"Nats-Msg-Id", subject}}};
      st.in_flight = true;
      natsvisor::ask(self, svc, natsvisor::js_pub_atom_v, std::string{}, std::move(msg),
                     caf::timespan{std::chrono::seconds{1}})
        .then(
          [=](const natsvisor::js_ack& ack) {
            auto& st = self->state;
            st.in_flight = false;
            book->acked[st.job] = ack.sequence;
            book->duplicates += ack.duplicate ? 1 : 0;
            if (!st.last_error.empty() || ack.duplicate)
              say("publisher", "job %llu acknowledged after a retry: sequence %llu%s",
                  static_cast<unsigned long long>(st.job),
                  static_cast<unsigned long long>(ack.sequence),
                  ack.duplicate ? " (duplicate: stored before, its ack was lost)" : "");
            st.last_error.clear();
            ++st.job;
            self->delayed_send(self, std::chrono::milliseconds{5}, tick_atom_v);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            st.in_flight = false;
            ++book->failures;
            auto why = natsvisor::describe(err);
            if (why != st.last_error) // each new kind of failure once
              say("publisher", "job %llu not acknowledged: %s; retrying",
                  static_cast<unsigned long long>(st.job), why.c_str());
            st.last_error = std::move(why);
            self->delayed_send(self, std::chrono::milliseconds{50}, tick_atom_v);
          });
    },
    [self](stop_atom) -> caf::result<void> {
      auto& st = self->state;
      st.stopping = true;
      st.stopped = self->make_response_promise();
      if (!st.in_flight)
        self->send(self, tick_atom_v); // answers at once (a queued tick may, too)
      return st.stopped;
    },
  };
}

} // namespace chaos
