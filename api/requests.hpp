#pragma once

// Typed requests for event-based actors, so user code does not spell raw atoms:
//
//   natsvisor::request_jetstream(self, svc).then(
//     [=](natsvisor::jetstream_handle js) { ... },
//     [=](caf::error& err) { ... natsvisor::describe(err) ... });
//
// Each returns CAF's response handle; an empty URL means the configured default.

#include <chrono>
#include <string>

#include "caf/actor.hpp"

#include "messages/messages.hpp"

namespace natsvisor {

/// Deadline of a request to the service; the service itself answers with errc::timeout after
/// `request_timeout`, so this only fires when the service is gone or overloaded.
constexpr caf::timespan default_request_deadline = std::chrono::seconds(30);

template <class Self>
auto request_connection(Self* self, const caf::actor& svc, std::string url = {},
                        caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, get_conn_atom_v, std::move(url));
}

template <class Self>
auto request_jetstream(Self* self, const caf::actor& svc, std::string url = {},
                       caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, get_js_atom_v, std::move(url));
}

/// Answered with a connection_scope: counted as active until its last copy is gone.
template <class Self>
auto request_connection_scope(Self* self, const caf::actor& svc, std::string url = {},
                              caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, scope_atom_v, std::move(url));
}

template <class Self>
auto request_jetstream_scope(Self* self, const caf::actor& svc, std::string url = {},
                             caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, js_scope_atom_v, std::move(url));
}

template <class Self>
auto request_health(Self* self, const caf::actor& svc, std::string url = {},
                    caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, health_atom_v, std::move(url));
}

template <class Self>
auto request_close(Self* self, const caf::actor& svc, std::string url = {},
                   caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, close_conn_atom_v, std::move(url));
}

template <class Self>
auto request_reset(Self* self, const caf::actor& svc, std::string url = {},
                   caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, reset_atom_v, std::move(url));
}

template <class Self>
auto request_status(Self* self, const caf::actor& svc,
                    caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, status_atom_v);
}

/// `watcher` receives a state_changed message for every state change of every URL.
template <class Self>
void watch(Self* self, const caf::actor& svc, const caf::actor& watcher) {
  self->send(svc, watch_atom_v, watcher);
}

} // namespace natsvisor
