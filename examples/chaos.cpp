// chaos: JetStream publishes through the message path while the server is SIGKILLed twice.
//
//  1. starts its own nats-server (JetStream, temporary store) on a free 127.0.0.1 port;
//  2. a watcher prints every state change; a publisher actor sends one message at a time with
//     request_js_publish (each carries a Nats-Msg-Id, so a retry of a message that was stored
//     but whose ack was lost is deduplicated by the server) and records every ack's sequence;
//     a publish that fails (timeout, connection closed, ...) was never acknowledged and is
//     retried;
//  3. outage 1: SIGKILL + immediate restart: nats.c reconnects inside the connection;
//  4. outage 2: SIGKILL, down for longer than nats.c's reconnect budget: nats.c closes the
//     connection and the supervisor restarts it (a new generation);
//  5. reads every acknowledged sequence back from the stream and prints whether any is missing.
//
// Usage: chaos            Exit status 0 when no acknowledged message was lost and the
//                         supervisor restarted the connection; 1 otherwise. Takes ~10 s.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>

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
using stop_atom = caf::atom_constant<caf::atom("stop")>;

constexpr const char* stream_name = "CHAOS";
constexpr const char* stream_subjects = "chaos.>";

// One line at a time from any thread, with the time since start; `who` 9 wide ("publisher").
const natsvisor_examples::line_printer say{9};
using natsvisor_examples::ms;

// -- the watcher ------------------------------------------------------------------------------

caf::behavior watcher(caf::event_based_actor*) {
  return {
    [](const natsvisor::state_changed& ev) {
      say("watcher", "%s%s %-12s generation %llu%s%s", ev.url.c_str(),
          ev.slot == 0 ? "" : (" slot " + std::to_string(ev.slot)).c_str(),
          natsvisor::to_string(ev.state), static_cast<unsigned long long>(ev.generation),
          ev.detail.empty() ? "" : "  -- ", ev.detail.c_str());
    },
    [](const natsvisor::lease_leaked&) {},
  };
}

// -- the publisher ----------------------------------------------------------------------------

// What the publisher saw; main reads it after the publisher answered `stop`.
struct ledger {
  std::map<uint64_t, uint64_t> acked; ///< job -> stream sequence of its ack
  uint64_t acks = 0;                  ///< acks received (duplicates included)
  uint64_t duplicates = 0;            ///< acks flagged duplicate (a retry of a stored message)
  uint64_t failures = 0;              ///< publishes that failed and were retried
};

struct publisher_state {
  caf::actor svc;
  std::shared_ptr<ledger> book;
  uint64_t job = 1; ///< the job in flight (or next)
  bool stopping = false;
  bool in_flight = false;
  clock_type::time_point sent; ///< when the publish in flight was sent
  caf::response_promise stopped;
  std::string last_error;
  static inline const char* name = "chaos.publisher";
};

using publisher_actor = caf::stateful_actor<publisher_state>;

std::string subject_of(uint64_t job) {
  return "chaos." + std::to_string(job);
}

caf::behavior publisher(publisher_actor* self, caf::actor svc, std::shared_ptr<ledger> book) {
  self->state.svc = std::move(svc);
  self->state.book = std::move(book);
  self->send(self, tick_atom::value);
  return {
    [self](tick_atom) {
      auto& st = self->state;
      if (st.stopping) {
        if (st.stopped.pending())
          st.stopped.deliver(caf::unit);
        return;
      }
      auto subject = subject_of(st.job);
      natsvisor::outgoing msg{
        subject, "payload of job " + std::to_string(st.job), {{"Nats-Msg-Id", subject}}};
      st.in_flight = true;
      st.sent = clock_type::now();
      natsvisor::request_js_publish(self, st.svc, std::move(msg), 1s)
        .then(
          [self](natsvisor::js_ack& ack) {
            auto& st = self->state;
            auto& b = *st.book;
            st.in_flight = false;
            ++b.acks;
            b.duplicates += ack.duplicate ? 1 : 0;
            b.acked[st.job] = ack.sequence;
            auto took = clock_type::now() - st.sent;
            if (!st.last_error.empty() || ack.duplicate || took > 100ms) {
              say("publisher", "job %llu acknowledged: sequence %llu after %lld ms%s%s",
                  static_cast<unsigned long long>(st.job),
                  static_cast<unsigned long long>(ack.sequence), ms(took),
                  st.last_error.empty() ? "" : " (a retry)",
                  ack.duplicate ? " (duplicate: stored before, its ack was lost)" : "");
              st.last_error.clear();
            }
            ++st.job;
            self->delayed_send(self, 5ms, tick_atom::value);
          },
          [self](caf::error& err) {
            auto& st = self->state;
            st.in_flight = false;
            ++st.book->failures;
            auto why = natsvisor::describe(err);
            if (why != st.last_error) // each new kind of failure once
              say("publisher", "job %llu not acknowledged: %s; retrying",
                  static_cast<unsigned long long>(st.job), why.c_str());
            st.last_error = std::move(why);
            self->delayed_send(self, 50ms, tick_atom::value);
          });
    },
    // Answered once no publish is in flight: every result is then in the ledger.
    [self](stop_atom) -> caf::result<void> {
      auto& st = self->state;
      st.stopping = true;
      st.stopped = self->make_response_promise();
      if (!st.in_flight)
        self->send(self, tick_atom::value); // answers at once (a queued tick may too)
      return st.stopped;
    },
  };
}

// -- helpers for main ---------------------------------------------------------------------------

// Polls the status until the shared connection is connected with at least `generation`.
uint64_t wait_connected(natsvisor::connection_service& svc, uint64_t generation,
                        caf::timespan deadline) {
  auto until = clock_type::now() + deadline;
  while (clock_type::now() < until) {
    if (auto st = svc.status(); st)
      for (auto& u : *st)
        if (u.state == natsvisor::connection_state::connected && u.generation >= generation)
          return u.generation;
    std::this_thread::sleep_for(20ms);
  }
  return 0;
}

bool ensure_stream(natsvisor::connection_service& svc) {
  auto err = svc.with_jetstream([](const natsvisor::jetstream_handle& js) {
    // The store is new, so the stream must be too: anything but OK is a failure.
    auto r = natsvisor_examples::ensure_stream(js.get(), stream_name, stream_subjects);
    if (!r.ready())
      throw std::runtime_error(std::string{"js_AddStream: "} + natsStatus_GetText(r.status));
  });
  if (err)
    say("chaos", "no JetStream: %s", natsvisor::describe(err).c_str());
  return !err;
}

} // namespace

int main() {
  using natsvisor_examples::owned_server;
  int port = natsvisor_examples::free_loopback_port();
  if (port == 0) {
    say("chaos", "FAILED: found no free port on 127.0.0.1");
    return 1;
  }
  std::unique_ptr<owned_server> server;
  try {
    server = std::make_unique<owned_server>(
      port, [](const std::string& line) { say("chaos", "%s", line.c_str()); }, "natsvisor-chaos");
  } catch (const std::exception& e) {
    say("chaos", "FAILED: %s", e.what());
    return 1;
  }
  if (!server->start()) {
    say("chaos", "FAILED: could not start %s", owned_server::binary);
    return 1;
  }
  std::string url = "nats://127.0.0.1:" + std::to_string(port);
  say("chaos", "nats-server pid %d on %s (JetStream store in %s)", server->pid(),
      natsvisor::redact(url).c_str(), server->dir().c_str());

  natsvisor::settings s;
  s.nats_url = url;
  s.nats.max_reconnect = 10;
  s.nats.reconnect_wait = 100ms;
  s.nats.reconnect_jitter = 20ms;
  s.policy.base_delay = 300ms;
  s.policy.max_delay = 1s;
  s.request_timeout = 3s;
  s.connection_timeout = 1s;
  s.log_level = "error"; // the watcher and the publisher show what happens
  auto budget = s.nats.max_reconnect * (s.nats.reconnect_wait + s.nats.reconnect_jitter);
  say("chaos",
      "nats_max_reconnect %d, nats_reconnect_wait %lld ms (nats.c budget ~%lld ms), "
      "reconnect_delay %lld ms, request_timeout %lld ms",
      s.nats.max_reconnect, ms(s.nats.reconnect_wait), ms(budget), ms(s.policy.base_delay),
      ms(s.request_timeout));

  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  int rc = 0;
  {
    natsvisor::connection_service svc{sys, s};
    auto w = sys.spawn(watcher);
    svc.watch(w);
    // The first request connects (the default URL is connected on first use).
    if (!ensure_stream(svc) || wait_connected(svc, 1, 5s) == 0) {
      say("chaos", "FAILED: no connection or no stream");
      return 1;
    }
    auto book = std::make_shared<ledger>();
    auto pub = sys.spawn(publisher, svc.actor(), book);
    say("chaos", "publishing to stream %s, one message at a time", stream_name);
    std::this_thread::sleep_for(2s);

    // Outage 1: shorter than nats.c's budget: it reconnects inside the same connection.
    say("chaos", "outage 1: SIGKILL nats-server (pid %d) and start it again at once",
        server->pid());
    server->kill();
    bool ok = server->start();
    if (ok) {
      say("chaos", "nats-server is back (pid %d)", server->pid());
      ok = wait_connected(svc, 1, 5s) != 0;
    }
    std::this_thread::sleep_for(2s);

    // Outage 2: longer than nats.c's budget: the connection closes, the supervisor restarts.
    auto down = budget + 1500ms;
    if (ok) {
      say("chaos", "outage 2: SIGKILL nats-server (pid %d), down for %lld ms", server->pid(),
          ms(down));
      server->kill();
      std::this_thread::sleep_for(down);
      ok = server->start();
    }
    uint64_t generation = 0;
    if (ok) {
      say("chaos", "nats-server is back (pid %d)", server->pid());
      generation = wait_connected(svc, 2, 10s);
      if (generation == 0)
        say("chaos", "the supervisor did not bring up a new connection within 10 s");
    }
    std::this_thread::sleep_for(2s);

    caf::scoped_actor self{sys};
    self->request(pub, 10s, stop_atom::value)
      .receive([] {},
               [&](caf::error& err) {
                 say("chaos", "publisher did not stop: %s", natsvisor::describe(err).c_str());
                 ok = false;
               });
    self->send_exit(pub, caf::exit_reason::user_shutdown);
    say("chaos", "publisher stopped");

    // Read every acknowledged sequence back.
    uint64_t stored = 0;
    uint64_t missing = 0;
    bool checked = false;
    auto js = svc.get_jetstream();
    if (!js) {
      say("chaos", "no JetStream handle for the check: %s",
          natsvisor::describe(js.error()).c_str());
      ok = false;
    } else {
      jsStreamInfo* si = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      if (js_GetStreamInfo(&si, js->get(), stream_name, nullptr, &jerr) == NATS_OK) {
        stored = si->State.Msgs;
        checked = true;
      } else {
        say("chaos", "js_GetStreamInfo failed");
        ok = false;
      }
      jsStreamInfo_Destroy(si);
      for (auto& [job, seq] : book->acked) {
        natsMsg* m = nullptr;
        natsStatus st = js_GetMsg(&m, js->get(), stream_name, seq, nullptr, &jerr);
        bool found = st == NATS_OK && subject_of(job) == natsMsg_GetSubject(m);
        natsMsg_Destroy(m);
        if (!found && missing++ < 10)
          say("chaos", "job %llu: acknowledged sequence %llu is missing (%s)",
              static_cast<unsigned long long>(job), static_cast<unsigned long long>(seq),
              st == NATS_OK ? "another message is stored there" : natsStatus_GetText(st));
      }
    }
    auto status = svc.status();
    std::printf("\n");
    if (status)
      for (auto& u : *status)
        std::printf("connection %s: %s, generation %llu, %llu supervisor restart(s), %llu nats.c "
                    "reconnect(s)\n",
                    u.url.c_str(), natsvisor::to_string(u.state),
                    static_cast<unsigned long long>(u.generation),
                    static_cast<unsigned long long>(u.restarts),
                    static_cast<unsigned long long>(u.reconnects));
    std::printf("acknowledged messages:              %zu\n", book->acked.size());
    std::printf("acks received (duplicates):         %llu (%llu)\n",
                static_cast<unsigned long long>(book->acks),
                static_cast<unsigned long long>(book->duplicates));
    std::printf("failed publishes (retried):         %llu\n",
                static_cast<unsigned long long>(book->failures));
    std::printf("stored in stream %s:                %llu\n", stream_name,
                static_cast<unsigned long long>(stored));
    std::printf("no acknowledged message lost:       %s\n", !checked       ? "unknown (not checked)"
                                                            : missing == 0 ? "yes"
                                                                           : "no");
    std::printf("supervisor restarted the connection: %s\n\n", generation >= 2 ? "yes" : "no");
    if (missing > 0)
      say("chaos", "FAILED: %llu acknowledged message(s) missing from the stream",
          static_cast<unsigned long long>(missing));
    else if (!ok)
      say("chaos", "FAILED: the run did not complete (see above)");
    else if (generation < 2)
      say("chaos", "FAILED: the long outage did not lead to a supervisor restart");
    rc = missing == 0 && ok && generation >= 2 ? 0 : 1;
    self->send_exit(w, caf::exit_reason::user_shutdown);
    svc.stop();
  }
  server.reset();
  say("chaos", rc == 0 ? "done: success" : "done: FAILED");
  return rc;
}
