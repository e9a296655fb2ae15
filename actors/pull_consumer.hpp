#pragma once

#include <chrono>
#include <string>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/timespan.hpp"

namespace natsvisor {

/// What a pull consumer fetches and where from.
struct pull_consumer_config {
  std::string url;            ///< empty: the service's default URL
  std::string stream;         ///< the stream to read
  std::string durable;        ///< the durable consumer, created if missing
  std::string filter_subject; ///< the subject it reads (e.g. "orders.>")
  int batch = 64;             ///< messages per fetch at most
  caf::timespan fetch_wait = std::chrono::milliseconds(500); ///< a fetch waits this long
  caf::timespan process_timeout = std::chrono::seconds(30);  ///< the target's time per batch
};

/// Spawns a JetStream pull consumer: a detached actor (fetching blocks) that ensures the
/// durable consumer, fetches batches and sends each to `target` as a request carrying a
/// `std::vector<nats_message>`. An empty reply acknowledges the whole batch; an error reply
/// (or no reply within process_timeout) naks it for redelivery. One batch is in flight at a
/// time. When the connection is replaced (a supervisor restart), it asks the service for the
/// new JetStream handle and ensures the consumer again. It stops with the service (it monitors
/// it), with the target, or on exit.
caf::actor spawn_pull_consumer(caf::actor_system& sys, caf::actor service, caf::actor target,
                               pull_consumer_config cfg);

} // namespace natsvisor
