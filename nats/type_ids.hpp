#pragma once

// The project's single type-ID block: every message type and atom natsvisor sends.

#include "caf/all.hpp"

#include "base/publish_credit.hpp"
#include "base/request_deadline.hpp"
#include "messages/errors.hpp"
#include "nats/handles.hpp"
#include "messages/types.hpp"

// clang-format off
CAF_BEGIN_TYPE_ID_BLOCK(natsvisor, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::connection_state))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::state_changed))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::health_result))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::url_status))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::status_report))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::connection_handle))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::jetstream_handle))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::connection_scope))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::jetstream_scope))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::pool_status))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::lease))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::outgoing))
  CAF_ADD_TYPE_ID(natsvisor, (std::vector<natsvisor::outgoing>))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::packed_batch))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::nats_message))
  CAF_ADD_TYPE_ID(natsvisor, (std::vector<natsvisor::nats_message>))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::js_ack))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::lease_leaked))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::traffic))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::drop_reason))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::publishes_dropped))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::publish_status))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::slow_consumer))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::publisher))
  CAF_ADD_TYPE_ID(natsvisor, (natsvisor::caller_deadline))

  // Atom text: at most 10 characters in CAF 0.17. CAF defines close_atom, get_atom, ... in
  // namespace caf already; these live in namespace natsvisor.

  // The connection service API (service actors -> supervisor).
  CAF_ADD_ATOM(natsvisor, natsvisor, get_conn_atom, "get_conn")
  CAF_ADD_ATOM(natsvisor, natsvisor, get_js_atom, "get_js")
  CAF_ADD_ATOM(natsvisor, natsvisor, health_atom, "health")
  CAF_ADD_ATOM(natsvisor, natsvisor, close_conn_atom, "close_conn")
  CAF_ADD_ATOM(natsvisor, natsvisor, status_atom, "status")
  CAF_ADD_ATOM(natsvisor, natsvisor, watch_atom, "watch")
  CAF_ADD_ATOM(natsvisor, natsvisor, unwatch_atom, "unwatch")
  CAF_ADD_ATOM(natsvisor, natsvisor, reset_atom, "reset")
  CAF_ADD_ATOM(natsvisor, natsvisor, scope_atom, "scope")
  CAF_ADD_ATOM(natsvisor, natsvisor, js_scope_atom, "js_scope")
  CAF_ADD_ATOM(natsvisor, natsvisor, scope_end_atom, "scope_end")

  // Pool and leases.
  CAF_ADD_ATOM(natsvisor, natsvisor, lease_atom, "lease")
  CAF_ADD_ATOM(natsvisor, natsvisor, lease_end_atom, "lease_end")
  CAF_ADD_ATOM(natsvisor, natsvisor, leak_check_atom, "leak_chk")

  // The message path.
  CAF_ADD_ATOM(natsvisor, natsvisor, pub_atom, "pub")
  CAF_ADD_ATOM(natsvisor, natsvisor, req_atom, "req")
  CAF_ADD_ATOM(natsvisor, natsvisor, sub_atom, "sub")
  CAF_ADD_ATOM(natsvisor, natsvisor, unsub_atom, "unsub")
  CAF_ADD_ATOM(natsvisor, natsvisor, js_pub_atom, "js_pub")
  CAF_ADD_ATOM(natsvisor, natsvisor, req_to_atom, "req_to")
  // A publish answered once the server has read it (a round trip after it).
  CAF_ADD_ATOM(natsvisor, natsvisor, pub_conf_atom, "pub_conf")
  // Publishes with credit (base/publish_credit.hpp): (publisher, url) -> publisher; a publish
  // its sender charged already carries `charged` last; (overloaded, url) -> errc::overloaded,
  // the answer to an awaited publish whose charge was refused.
  CAF_ADD_ATOM(natsvisor, natsvisor, publisher_atom, "publisher")
  CAF_ADD_ATOM(natsvisor, natsvisor, charged_atom, "charged")
  CAF_ADD_ATOM(natsvisor, natsvisor, overloaded_atom, "overloaded")

  // The JetStream pull consumer.
  CAF_ADD_ATOM(natsvisor, natsvisor, ensure_atom, "ensure")
  CAF_ADD_ATOM(natsvisor, natsvisor, fetch_atom, "fetch")

  // Connection actor -> supervisor.
  CAF_ADD_ATOM(natsvisor, natsvisor, conn_up_atom, "conn_up")
  CAF_ADD_ATOM(natsvisor, natsvisor, conn_event_atom, "conn_evt")
  CAF_ADD_ATOM(natsvisor, natsvisor, conn_down_atom, "conn_down")
  CAF_ADD_ATOM(natsvisor, natsvisor, stats_atom, "stats")
  CAF_ADD_ATOM(natsvisor, natsvisor, bounce_atom, "bounce")
  // A message-path subscription started a slow-consumer episode: (sub_slow, id) from its message
  // handler to the connection actor, (sub_slow, id, dropped, episodes) on to the supervisor.
  CAF_ADD_ATOM(natsvisor, natsvisor, sub_slow_atom, "sub_slow")

  // Supervisor -> connection actor: close the connection, answer what is in flight with the error.
  CAF_ADD_ATOM(natsvisor, natsvisor, stop_conn_atom, "stop_conn")
  // Supervisor -> a replaced connection actor: hand back what is in flight, close, quit.
  CAF_ADD_ATOM(natsvisor, natsvisor, retire_atom, "retire")
  // Supervisor -> connection actor after a reconnect: stop handing publishes back (answered, so
  // every publish handed back before it reaches the supervisor first).
  CAF_ADD_ATOM(natsvisor, natsvisor, pub_resume_atom, "pub_resume")

  // nats.c callbacks -> connection actor.
  CAF_ADD_ATOM(natsvisor, natsvisor, connected_atom, "connected")
  CAF_ADD_ATOM(natsvisor, natsvisor, disconnected_atom, "disconn")
  CAF_ADD_ATOM(natsvisor, natsvisor, reconnected_atom, "reconn")
  CAF_ADD_ATOM(natsvisor, natsvisor, closed_atom, "closed")
  CAF_ADD_ATOM(natsvisor, natsvisor, lame_duck_atom, "lame_duck")
  CAF_ADD_ATOM(natsvisor, natsvisor, async_error_atom, "async_err")

  // Supervisor timers.
  CAF_ADD_ATOM(natsvisor, natsvisor, restart_atom, "restart")
  CAF_ADD_ATOM(natsvisor, natsvisor, sweep_atom, "sweep")
  CAF_ADD_ATOM(natsvisor, natsvisor, forget_atom, "forget")

  // Service manager.
  CAF_ADD_ATOM(natsvisor, natsvisor, svc_init_atom, "svc_init")
  CAF_ADD_ATOM(natsvisor, natsvisor, svc_clean_atom, "svc_clean")
  CAF_ADD_ATOM(natsvisor, natsvisor, get_svc_atom, "get_svc")
  CAF_ADD_ATOM(natsvisor, natsvisor, svc_stop_atom, "svc_stop")
  CAF_ADD_ATOM(natsvisor, natsvisor, svc_list_atom, "svc_list")
  CAF_ADD_ATOM(natsvisor, natsvisor, svc_ready_atom, "svc_ready")

CAF_END_TYPE_ID_BLOCK(natsvisor)
// clang-format on
