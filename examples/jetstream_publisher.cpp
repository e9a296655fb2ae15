// jetstream_publisher: an event-based service actor that publishes to JetStream.
//
// The actor asks the connection service for a JetStream handle *by message*
// (natsvisor::request_jetstream), ensures a stream exists, publishes N messages with js_Publish
// and prints each acknowledgement's stream and sequence.
//
// Usage: jetstream_publisher [nats://host:port] [N]
//        (URL else $NATS_URL, else nats://127.0.0.1:4222; N defaults to 5)
// The server must run with JetStream (nats-server -js).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nats/nats.h>

#include "nats/status.hpp"
#include "caf/all.hpp"

#include "config/url.hpp"
#include "api/connection_service.hpp"
#include "api/requests.hpp"
#include "example_support.hpp"

namespace {

using run_atom = caf::atom_constant<caf::atom("run")>;

constexpr const char* stream_name = "DEMO_ORDERS";
constexpr const char* stream_subject = "demo.orders.>";

caf::error js_error(natsStatus s, jsErrCode jerr, const std::string& what,
                    const natsvisor::jetstream_handle& js) {
  auto err = natsvisor::from_status(s, natsvisor::errc::nats_error, js.url(), what);
  if (jerr != 0)
    return natsvisor::make_error(natsvisor::code_of(err),
                                 natsvisor::detail_of(err) + " (JetStream error "
                                   + std::to_string(static_cast<int>(jerr)) + ")",
                                 js.url());
  return err;
}

// Does the blocking JetStream work. js_AddStream and js_Publish block until the server answers
// (one round trip each, up to the JetStream timeout of 5 s), so they must not run on CAF's
// scheduler threads: this actor is spawned `caf::detached` (its own thread) and the event-based
// publisher only exchanges messages with it.
caf::behavior js_worker(caf::event_based_actor* self, natsvisor::jetstream_handle js) {
  return {
    [self, js](run_atom, int count) -> caf::result<uint64_t> {
      self->quit(); // one job only; the answer below is still delivered
      // 1. Ensure the stream. "Already exists" is fine: another run made it.
      auto r = natsvisor_examples::ensure_stream(js.get(), stream_name, stream_subject);
      if (r.ready()) {
        // The server answers OK both for a new stream and for one that exists with this config.
        std::printf("stream %s ready (subjects %s)\n", stream_name, stream_subject);
      } else if (r.exists()) {
        std::printf("stream %s already exists (with a different config): using it as is\n",
                    stream_name);
      } else {
        return js_error(r.status, r.jerr, "js_AddStream", js);
      }

      // 2. Publish; each call waits for the stream's acknowledgement.
      uint64_t last = 0;
      for (int i = 1; i <= count; ++i) {
        std::string subject = "demo.orders." + std::to_string(i);
        std::string payload = "{\"order\":" + std::to_string(i) + "}";
        jsPubAck* ack = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsStatus s = js_Publish(&ack, js.get(), subject.c_str(), payload.data(),
                                  static_cast<int>(payload.size()), nullptr, &jerr);
        if (s != NATS_OK)
          return js_error(s, jerr, "js_Publish " + subject, js);
        std::printf("published %-16s -> ack: stream %s, sequence %llu%s\n", subject.c_str(),
                    ack->Stream, static_cast<unsigned long long>(ack->Sequence),
                    ack->Duplicate ? " (duplicate)" : "");
        last = ack->Sequence;
        jsPubAck_Destroy(ack);
      }
      return last;
    },
  };
}

} // namespace

// The service actor of this example: event-based, never blocks.
caf::behavior publisher(caf::event_based_actor* self, caf::actor svc, int count) {
  natsvisor::request_jetstream(self, svc).then(
    [self, count](natsvisor::jetstream_handle& js) {
      std::printf("got a JetStream handle for %s (generation %llu)\n", js.url().c_str(),
                  static_cast<unsigned long long>(js.generation()));
      auto worker = self->spawn<caf::detached>(js_worker, js);
      self->request(worker, std::chrono::seconds(60), run_atom::value, count)
        .then(
          [self, count](uint64_t last_seq) {
            std::printf("done: %d message(s) acknowledged, last sequence %llu\n", count,
                        static_cast<unsigned long long>(last_seq));
            self->quit();
          },
          [self](caf::error& err) {
            std::printf("JetStream error: %s\n", natsvisor::describe(err).c_str());
            self->quit(std::move(err));
          });
    },
    [self](caf::error& err) {
      std::printf("no JetStream handle: %s\n", natsvisor::describe(err).c_str());
      self->quit(std::move(err));
    });
  return {}; // nothing else to handle; the pending responses keep the actor alive
}

int main(int argc, char** argv) {
  std::string url = natsvisor_examples::url_from(argc, argv);
  int count = argc > 2 ? std::atoi(argv[2]) : 5;
  if (count < 1)
    count = 1;

  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  natsvisor::settings settings;
  settings.nats_url = url;
  settings.request_timeout = std::chrono::seconds(3);
  settings.connection_timeout = std::chrono::seconds(2);
  settings.log_level = "warn";
  natsvisor::connection_service svc{sys, settings};
  std::printf("publishing %d message(s) to JetStream at %s\n", count,
              natsvisor::redact(url).c_str());

  caf::scoped_actor self{sys};
  auto pub = self->spawn(publisher, svc.actor(), count);
  self->monitor(pub);
  caf::error reason;
  self->receive([&](caf::down_msg& down) { reason = std::move(down.reason); });
  if (reason && reason != caf::exit_reason::normal) {
    std::printf("failed: %s\n", natsvisor::describe(reason).c_str());
    return 1;
  }
  return 0;
}
