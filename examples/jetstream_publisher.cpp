// jetstream_publisher: an event-based actor publishes to JetStream without ever blocking.
//
// js_Publish waits for the stream's acknowledgement, a round trip that an actor must not wait
// out on CAF's scheduler threads. The message path does the waiting for it: the actor sends a
// js_pub request to the connection service through the typed protocol (natsvisor::ask with
// connection_api, checked at compile time) and is answered with the js_ack (stream and
// sequence) once the stream stored the message, or with a typed error.
//
// caf_main is blocking code, so it may block: it makes sure the stream exists first, with the
// facade's get_jetstream and js_AddStream.
//
// Usage: jetstream_publisher [--natsvisor.nats_url=nats://127.0.0.1:PORT]
//        (else $NATS_URL, else nats://localhost:4222; a server is started there if none listens)
// Exit status 0 when every message was acknowledged, 1 otherwise.

#include <cstdio>
#include <memory>
#include <string>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "api/protocol.hpp"
#include "example_support.hpp"

using namespace std::chrono_literals;
using namespace natsvisor_examples;

namespace {

constexpr const char* stream_name = "DEMO_ORDERS";
constexpr const char* stream_subjects = "demo.orders.>";
constexpr int message_count = 5;

// Sends all its publishes at once and quits once every one is answered (with the first error,
// if any). The pending answers keep it alive; its behavior has nothing else to handle.
caf::behavior publisher(caf::event_based_actor* self, natsvisor::connection_api svc) {
  auto pending = std::make_shared<int>(message_count);
  for (int i = 1; i <= message_count; ++i) {
    auto subject = "demo.orders." + std::to_string(i);
    natsvisor::outgoing msg{subject, "{\"order\":" + std::to_string(i) + "}", {}};
    // "" is the configured URL; the timespan is how long the stream may take to acknowledge.
    natsvisor::ask(self, svc, natsvisor::js_pub_atom_v, std::string{}, std::move(msg),
                   caf::timespan{5s})
      .then(
        [self, pending, subject](const natsvisor::js_ack& ack) {
          say("publisher", "%-15s -> ack: stream %s, sequence %llu", subject.c_str(),
              ack.stream.c_str(), static_cast<unsigned long long>(ack.sequence));
          if (--*pending == 0)
            self->quit();
        },
        [self, subject](caf::error& err) {
          say("publisher", "%s not acknowledged: %s", subject.c_str(),
              natsvisor::describe(err).c_str());
          self->quit(std::move(err));
        });
  }
  return {};
}

} // namespace

void caf_main(caf::actor_system& sys, const natsvisor_examples::config& cfg) {
  auto start = prepare(cfg);
  if (!start)
    return;
  auto* s = &start->settings;
  natsvisor::connection_service svc{sys, *s};

  // Blocking code: one round trip to create the stream (or find it there).
  auto js = svc.get_jetstream();
  auto err = js ? ensure_stream(*js, stream_name, stream_subjects) : js.error();
  if (err) {
    say("main", "no stream: %s", natsvisor::describe(err).c_str());
    return cfg.exit_with(1);
  }
  say("main", "stream %s on %s ready; publishing %d messages from an actor", stream_name,
      stream_subjects, message_count);

  caf::scoped_actor self{sys};
  auto pub = sys.spawn(publisher, svc.api());
  self->monitor(pub);
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = std::move(down.reason); });
  bool ok = !reason || reason == caf::exit_reason::normal;
  say("main", ok ? "done: every message acknowledged" : "done: FAILED");
  cfg.exit_with(ok ? 0 : 1);
}

CAF_MAIN()
