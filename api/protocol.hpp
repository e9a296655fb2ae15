#pragma once

// natsvisor's protocols, each declared once as a caf::typed_actor. Requests through these handles
// are checked at compile time: a message the service does not understand, or a handler for the
// wrong answer, does not compile. The event-based `ask` and the blocking facade
// (api/connection_service.hpp) derive everything from these declarations, so adding an operation
// is one line here and one handler in the service.

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_cast.hpp"
#include "caf/replies_to.hpp"
#include "caf/response_type.hpp"
#include "caf/timespan.hpp"
#include "caf/typed_actor.hpp"

#include "nats/type_ids.hpp"

namespace natsvisor {

/// What the service manager asks of every service (services/service_manager.hpp).
using service_api = caf::typed_actor<
  // Initialize; the manager is passed so that the service can ask it for other services.
  caf::replies_to<svc_init_atom, caf::actor>::with<void>,
  // Clean up; answered once done.
  caf::replies_to<svc_clean_atom>::with<void>>;

/// The connection service: the connection supervisor's interface. An empty URL means the
/// configured `nats_url`.
using connection_api = service_api::extend<
  // Handles and scopes of the URL's shared connection.
  caf::replies_to<get_conn_atom, std::string>::with<connection_handle>,
  caf::replies_to<get_js_atom, std::string>::with<jetstream_handle>,
  caf::replies_to<scope_atom, std::string>::with<connection_scope>,
  caf::replies_to<js_scope_atom, std::string>::with<jetstream_scope>,
  // A real round trip (healthy false, with the reason, when there is none).
  caf::replies_to<health_atom, std::string>::with<health_result>,
  // An exclusive pooled connection; a zero wait means the configured lease_timeout.
  caf::replies_to<lease_atom, std::string, caf::timespan>::with<lease>,
  // Lifecycle of a URL and of the whole service.
  caf::replies_to<close_conn_atom, std::string>::with<void>,
  caf::replies_to<reset_atom, std::string>::with<void>,
  caf::replies_to<status_atom>::with<status_report>,
  caf::reacts_to<watch_atom, caf::actor>, caf::reacts_to<unwatch_atom, caf::actor>,
  // The message path (the URL's shared connection; works across restarts). A publish made while
  // the connection is down is held by the supervisor (bounded) and answered once written, or
  // with errc::dropped; see README "What happens to publishes".
  caf::replies_to<pub_atom, std::string, outgoing>::with<void>,
  caf::replies_to<pub_atom, std::string, std::vector<outgoing>>::with<uint64_t>,
  caf::replies_to<pub_atom, std::string, packed_batch>::with<uint64_t>,
  // Answered once the server has read the message (a round trip after it), within the timespan.
  caf::replies_to<pub_conf_atom, std::string, outgoing, caf::timespan>::with<void>,
  // A publisher: publishes through it charge the URL's credit first (api/requests.hpp).
  caf::replies_to<publisher_atom, std::string>::with<publisher>,
  caf::replies_to<req_atom, std::string, outgoing, caf::timespan>::with<nats_message>,
  caf::replies_to<js_pub_atom, std::string, outgoing, caf::timespan>::with<js_ack>,
  // Subject, queue group (may be empty), subscriber; answered with the subscription's id.
  caf::replies_to<sub_atom, std::string, std::string, std::string, caf::actor>::with<uint64_t>,
  caf::reacts_to<unsub_atom, std::string, uint64_t>>;

/// The service manager (services/service_manager.hpp).
using service_manager_api = caf::typed_actor<
  caf::replies_to<get_svc_atom, std::string>::with<caf::actor>,
  caf::replies_to<svc_list_atom>::with<std::vector<std::string>>,
  caf::replies_to<svc_ready_atom>::with<void>, caf::replies_to<svc_stop_atom>::with<void>>;

/// The typed handle of a connection service that came as a plain actor (e.g. from the service
/// manager's get). The service must be natsvisor's connection service.
inline connection_api as_connection_api(const caf::actor& x) {
  return caf::actor_cast<connection_api>(x);
}

/// Deadline of a request to the service; the service itself answers with errc::timeout after
/// `request_timeout`, so this only fires when the service is gone or overloaded.
constexpr caf::timespan default_request_deadline = std::chrono::seconds(30);

namespace detail {

// The time a request itself asks to wait (a reply's timeout, a lease's wait): its timespans.
template <class... Ts>
caf::timespan extra_wait(const Ts&... xs) {
  caf::timespan extra{0};
  auto add = [&extra](const auto& x) {
    if constexpr (std::is_same<std::decay_t<decltype(x)>, caf::timespan>::value)
      extra += x;
  };
  (add(xs), ...);
  return extra;
}

/// The answer type of a request `Ts...` to `Handle`: T, or caf::unit_t for an empty answer.
template <class List>
struct single_answer;
template <class T>
struct single_answer<caf::detail::type_list<T>> {
  using type = T;
};
template <>
struct single_answer<caf::detail::type_list<void>> {
  using type = caf::unit_t;
};
template <class Handle, class... Ts>
using answer_t = typename single_answer<typename caf::response_type<
  typename Handle::signatures,
  caf::detail::implicit_conversions_t<std::decay_t<Ts>>...>::type>::type;

} // namespace detail

/// The one generic request for event-based actors: `ask(self, svc, get_conn_atom_v, url)
/// .then([](connection_handle h) { ... }, [](caf::error& err) { ... })`. The message and the
/// handlers are checked against connection_api (or any typed handle) at compile time.
template <class Self, class Handle, class... Ts>
auto ask(Self* self, const Handle& svc, Ts&&... xs) {
  auto deadline = default_request_deadline + detail::extra_wait(xs...);
  return self->request(svc, deadline, std::forward<Ts>(xs)...);
}

/// Fire and forget (no answer, failures only logged): `tell(self, svc, pub_atom_v, url, msg)`.
template <class Self, class Handle, class... Ts>
void tell(Self* self, const Handle& svc, Ts&&... xs) {
  self->send(svc, std::forward<Ts>(xs)...);
}

} // namespace natsvisor
