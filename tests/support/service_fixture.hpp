#pragma once

// Shared by the service tests: a CAF system with natsvisor's config, fast settings against a
// real server, and a scoped_actor that watches state changes and waits on them with deadlines.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "config/settings.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor::testing {

using namespace std::chrono_literals;

/// Settings that make every recovery path take well under a second per step.
inline settings fast_settings(const std::string& url) {
  settings s;
  s.nats_url = url;
  s.connection_timeout = 2s;
  s.request_timeout = 5s;
  s.health_timeout = 1s;
  s.nats.max_reconnect = 3;
  s.nats.reconnect_wait = 100ms;
  s.nats.reconnect_jitter = 0ms;
  s.policy.max_attempts = 5;
  s.policy.base_delay = 200ms;
  s.policy.multiplier = 2.0;
  s.policy.max_delay = 1s;
  s.policy.jitter = 0.0;
  s.log_level = "warn";
  return s;
}

/// Creates a file-backed stream capturing `subject` (on `replicas` nodes of a cluster); returns
/// nats.c's status.
inline natsStatus add_stream(jsCtx* js, const char* name, const char* subject, int replicas = 1) {
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = name;
  const char* subjects[] = {subject};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = replicas;
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js, &sc, nullptr, nullptr);
  jsStreamInfo_Destroy(si);
  return s;
}

struct service_fixture {
  explicit service_fixture(settings s)
    : sys(cfg), svc(std::make_unique<connection_service>(sys, std::move(s))), watcher(sys) {
    svc->watch(watcher);
  }

  ~service_fixture() { svc.reset(); }

  /// Waits for the first state_changed that `pred` accepts (every event is kept in `seen`);
  /// nothing once `deadline` passed.
  template <class Pred>
  std::optional<state_changed> await_event(Pred pred, caf::timespan deadline = 10s) {
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      auto left = until - std::chrono::steady_clock::now();
      if (left <= caf::timespan{0})
        return std::nullopt;
      std::optional<state_changed> got;
      watcher->receive([&](state_changed& ev) { got = std::move(ev); },
                       caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(left) + 1ms)
                         >> [] { /* nop: the deadline is checked above */ });
      if (!got)
        continue;
      seen.push_back(*got);
      if (pred(*got))
        return got;
    }
  }

  /// Waits until a state_changed with `state` arrives.
  std::optional<state_changed> await_state(connection_state state, caf::timespan deadline = 10s) {
    return await_event([state](const state_changed& ev) { return ev.state == state; }, deadline);
  }

  std::optional<url_status> status_of(const std::string& redacted_url) {
    auto report = svc->status();
    if (!report)
      return std::nullopt;
    for (auto& s : *report)
      if (s.url == redacted_url)
        return s;
    return std::nullopt;
  }

  config cfg; // must outlive the actor system
  caf::actor_system sys;
  std::unique_ptr<connection_service> svc;
  caf::scoped_actor watcher;
  std::vector<state_changed> seen;
};

} // namespace natsvisor::testing
