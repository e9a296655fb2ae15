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
#include <vector>

#include "caf/actor.hpp"

#include "api/protocol.hpp"

namespace natsvisor {

template <class Self, class Handle>
auto request_connection(Self* self, const Handle& svc, std::string url = {},
                        caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, get_conn_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_jetstream(Self* self, const Handle& svc, std::string url = {},
                       caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, get_js_atom_v, std::move(url));
}

/// Answered with a connection_scope: counted as active until its last copy is gone.
template <class Self, class Handle>
auto request_connection_scope(Self* self, const Handle& svc, std::string url = {},
                              caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, scope_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_jetstream_scope(Self* self, const Handle& svc, std::string url = {},
                             caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, js_scope_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_health(Self* self, const Handle& svc, std::string url = {},
                    caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, health_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_close(Self* self, const Handle& svc, std::string url = {},
                   caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, close_conn_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_reset(Self* self, const Handle& svc, std::string url = {},
                   caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, reset_atom_v, std::move(url));
}

template <class Self, class Handle>
auto request_status(Self* self, const Handle& svc,
                    caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, status_atom_v);
}

/// Answered with a lease (an exclusive pooled connection) or errc::pool_exhausted after
/// `wait` (zero: the configured lease_timeout).
template <class Self, class Handle>
auto request_lease(Self* self, const Handle& svc, std::string url = {},
                   caf::timespan wait = caf::timespan{0},
                   caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline + wait, lease_atom_v, std::move(url), wait);
}

/// Publishes through the message path; answered (empty) once nats.c took the message, or, when
/// the connection was down, once the supervisor wrote it on the next one (errc::dropped when it
/// could not keep it: buffer bound, give-up, close, stop, or held for request_timeout).
template <class Self, class Handle>
auto request_publish(Self* self, const Handle& svc, outgoing msg, std::string url = {},
                     caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, pub_atom_v, std::move(url), std::move(msg));
}

/// Publishes and is answered (empty) only once the server has read the message: a round trip
/// through the server after it. errc::timeout when none came within `timeout` (the message may
/// still have arrived); held across outages like every publish, errc::dropped if it cannot be.
template <class Self, class Handle>
auto request_publish_confirmed(Self* self, const Handle& svc, outgoing msg,
                               caf::timespan timeout = std::chrono::seconds(5),
                               std::string url = {}) {
  return self->request(svc, timeout + default_request_deadline, pub_conf_atom_v, std::move(url),
                       std::move(msg), timeout);
}

/// Publishes a batch with one mailbox round trip; answered with the number published.
template <class Self, class Handle>
auto request_publish_batch(Self* self, const Handle& svc, std::vector<outgoing> batch,
                           std::string url = {},
                           caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, pub_atom_v, std::move(url), std::move(batch));
}

/// The cheapest batch: many payloads for one subject packed in one buffer (packed_batch::add);
/// answered with the number published.
template <class Self, class Handle>
auto request_publish_batch(Self* self, const Handle& svc, packed_batch batch,
                           std::string url = {},
                           caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, pub_atom_v, std::move(url), std::move(batch));
}

/// Fire and forget: no reply, so no round trip at all; failures are logged, and publishes that
/// natsvisor could not keep are reported to watchers as publishes_dropped events (with counts).
template <class Self, class Handle>
void publish(Self* self, const Handle& svc, outgoing msg, std::string url = {}) {
  self->send(svc, pub_atom_v, std::move(url), std::move(msg));
}

// -- publishes with credit (base/publish_credit.hpp) ------------------------------------------
//
// A producer that may publish faster than its connection drains asks once for a publisher; each
// publish through it charges the URL's credit (publish_credit_messages / _bytes) before it is
// sent, and is refunded once the connection actor took it. Past the bound nothing is sent: a
// fire-and-forget publish returns false, an awaited one is answered errc::overloaded. So the
// mailboxes on the way to nats.c stay bounded however fast the producer is.
//
//   natsvisor::request_publisher(self, svc).then([=](natsvisor::publisher pub) {
//     if (!natsvisor::publish(self, pub, msg)) { /* overloaded: slow down, retry later */ }
//   });

/// Answered with the publisher of `url` (empty: the configured default).
template <class Self, class Handle>
auto request_publisher(Self* self, const Handle& svc, std::string url = {},
                       caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, publisher_atom_v, std::move(url));
}

/// Fire and forget with credit: false (and nothing sent) when the URL is overloaded.
template <class Self>
bool publish(Self* self, const publisher& pub, outgoing msg) {
  if (!pub.credit) { // no credit to charge (e.g. a default publisher): charged at the door
    self->send(pub.svc, pub_atom_v, pub.url, std::move(msg));
    return true;
  }
  if (!pub.credit->try_charge(cost_of(msg)))
    return false;
  self->send(pub.svc, pub_atom_v, pub.url, std::move(msg), charged_atom_v);
  return true;
}

namespace detail {

// An awaited publish with credit: sent charged, or (overloaded) a tiny request answered with
// errc::overloaded at once, so the caller handles both alike.
template <class Self, class Atom, class T, class... Ts>
auto charged_request(Self* self, const publisher& pub, caf::timespan deadline, Atom op, T x,
                     Ts... xs) {
  if (!pub.credit) // no credit to charge: an uncharged publish, charged at the door
    return self->request(pub.svc, deadline, op, pub.url, std::move(x), xs...);
  if (!pub.credit->try_charge(cost_of(x)))
    return self->request(pub.svc, deadline, overloaded_atom_v, pub.url);
  return self->request(pub.svc, deadline, op, pub.url, std::move(x), xs..., charged_atom_v);
}

} // namespace detail

/// As request_publish, with credit: errc::overloaded (nothing sent) past the bound.
template <class Self>
auto request_publish(Self* self, const publisher& pub, outgoing msg,
                     caf::timespan deadline = default_request_deadline) {
  return detail::charged_request(self, pub, deadline, pub_atom_v, std::move(msg));
}

/// As request_publish_confirmed, with credit: errc::overloaded (nothing sent) past the bound.
template <class Self>
auto request_publish_confirmed(Self* self, const publisher& pub, outgoing msg,
                               caf::timespan timeout = std::chrono::seconds(5)) {
  return detail::charged_request(self, pub, timeout + default_request_deadline, pub_conf_atom_v,
                                 std::move(msg), timeout);
}

/// As request_publish_batch, with credit (the whole batch is charged or refused).
template <class Self>
auto request_publish_batch(Self* self, const publisher& pub, std::vector<outgoing> batch,
                           caf::timespan deadline = default_request_deadline) {
  return detail::charged_request(self, pub, deadline, pub_atom_v, std::move(batch));
}

template <class Self>
auto request_publish_batch(Self* self, const publisher& pub, packed_batch batch,
                           caf::timespan deadline = default_request_deadline) {
  return detail::charged_request(self, pub, deadline, pub_atom_v, std::move(batch));
}

/// A request/reply through NATS; answered with the reply (a nats_message), or
/// errc::no_responders / errc::timeout.
template <class Self, class Handle>
auto request_reply(Self* self, const Handle& svc, outgoing msg,
                   caf::timespan timeout = std::chrono::seconds(5), std::string url = {}) {
  // `timeout` bounds the whole wait (for a restarting connection, then for the reply); the
  // actor's own deadline only adds a margin for a supervisor that is gone.
  return self->request(svc, timeout + default_request_deadline, req_atom_v, std::move(url),
                       std::move(msg), timeout);
}

/// A JetStream publish; answered with the js_ack (stream, sequence), or errc::no_stream /
/// errc::jetstream_error / errc::timeout.
template <class Self, class Handle>
auto request_js_publish(Self* self, const Handle& svc, outgoing msg,
                        caf::timespan timeout = std::chrono::seconds(5), std::string url = {}) {
  return self->request(svc, timeout + default_request_deadline, js_pub_atom_v, std::move(url),
                       std::move(msg), timeout);
}

/// Subscribes `subscriber` (often `self`): each message arrives in its mailbox as a
/// nats_message. Answered with the subscription id. The subscription survives restarts of the
/// connection and ends with the subscriber or with unsubscribe.
template <class Self, class Handle>
auto request_subscribe(Self* self, const Handle& svc, std::string subject,
                       const caf::actor& subscriber, std::string queue_group = {},
                       std::string url = {}, caf::timespan deadline = default_request_deadline) {
  return self->request(svc, deadline, sub_atom_v, std::move(url), std::move(subject),
                       std::move(queue_group), subscriber);
}

template <class Self, class Handle>
void unsubscribe(Self* self, const Handle& svc, uint64_t id, std::string url = {}) {
  self->send(svc, unsub_atom_v, std::move(url), id);
}

/// `watcher` receives a state_changed message for every state change of every URL, a
/// lease_leaked for a lease held too long and a publishes_dropped when fire-and-forget
/// publishes could not be kept.
template <class Self, class Handle>
void watch(Self* self, const Handle& svc, const caf::actor& watcher) {
  self->send(svc, watch_atom_v, watcher);
}

} // namespace natsvisor
