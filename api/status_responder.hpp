#pragma once

// Status over NATS: with `status_responder` on, an actor answers `natsvisor status` (tools/) on
// natsvisor.status (every application) and natsvisor.status.<app_name> with this process's
// status report as one JSON document. It subscribes through the message path of the default
// URL, so its subscriptions survive connection restarts like any other.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "caf/actor.hpp"
#include "caf/behavior.hpp"
#include "caf/stateful_actor.hpp"

#include "config/settings.hpp"
#include "messages/types.hpp"

namespace natsvisor {

/// The subject every responder listens on; `natsvisor.status.<app_name>` addresses one app.
constexpr const char status_subject[] = "natsvisor.status";

/// Who answers: several responders of one app (or one process) tell apart by host, pid and a
/// random instance id.
struct status_identity {
  std::string app;
  std::string host;
  int64_t pid = 0;
  std::string instance;
};

/// This process's identity for `app` (a fresh random instance id per call).
status_identity make_status_identity(const std::string& app);

/// Pure: the JSON reply. `health` (a round trip on one URL) adds that URL's rtt_ms; the other
/// URLs get null. Strings are escaped; last_error is scrubbed of credentials once more.
std::string status_json(const status_identity& who, const status_report& report,
                        const std::optional<health_result>& health);

struct status_responder_state {
  caf::actor svc;
  status_identity who;
  caf::timespan health_timeout{0};
  static inline const char* name = "natsvisor.status_responder";
};

/// Subscribes to the status subjects through `svc` (the supervisor) and answers each request
/// with status_json (after a health round trip on the default URL). Quits when `svc` goes.
caf::behavior status_responder(caf::stateful_actor<status_responder_state>* self, caf::actor svc,
                               std::shared_ptr<const settings> cfg);

} // namespace natsvisor
