#include "api/connection_service.hpp"

#include "caf/all.hpp"

#include "supervisors/connection_supervisor.hpp"

namespace natsvisor {

connection_service::connection_service(caf::actor_system& sys, settings cfg)
  : sys_(sys), cfg_(std::move(cfg)) {
  set_log_level(cfg_.log_level);
  supervisor_ = sys_.spawn(connection_supervisor, std::make_shared<const settings>(cfg_));
}

connection_service::~connection_service() {
  stop();
}

void connection_service::stop() {
  if (!supervisor_)
    return;
  caf::scoped_actor self{sys_};
  self->monitor(supervisor_);
  self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) { /* nop: gone */ });
  supervisor_ = nullptr;
}

bool connection_service::supervisor_alive() const {
  auto ptr = caf::actor_cast<caf::abstract_actor*>(supervisor_);
  return ptr != nullptr && !ptr->getf(caf::abstract_actor::is_terminated_flag);
}

template <class T, class... Ts>
caf::expected<T> connection_service::ask(caf::timespan deadline, Ts&&... xs) {
  if (!supervisor_)
    return make_error(errc::service_stopped, "the connection service was stopped");
  caf::scoped_actor self{sys_};
  caf::expected<T> result{caf::error{}};
  // The supervisor answers by itself at its own deadlines; this one only guards against a
  // supervisor that is gone.
  auto on_error = [&](caf::error& err) {
    if (err == caf::sec::request_timeout)
      result = make_error(errc::timeout, "the connection service did not answer");
    else if (err == caf::sec::request_receiver_down)
      // A message-path request is served by a connection actor; it can go while the service
      // stays (the connection was closed or replaced in the meantime).
      result = supervisor_alive()
                 ? make_error(errc::connection_closed, "the connection serving it went away")
                 : make_error(errc::service_stopped, "the connection service is gone");
    else
      result = std::move(err);
  };
  auto pending = self->request(supervisor_, deadline, std::forward<Ts>(xs)...);
  // A delivered caf::unit arrives as an empty message.
  if constexpr (std::is_same<T, caf::unit_t>::value)
    pending.receive([&] { result = caf::unit; }, on_error);
  else
    pending.receive([&](T& x) { result = std::move(x); }, on_error);
  return result;
}

namespace {
// Beyond every deadline the supervisor applies itself.
caf::timespan outer_deadline(const settings& cfg) {
  return cfg.request_timeout + cfg.health_timeout + std::chrono::seconds(5);
}
} // namespace

caf::expected<connection_handle> connection_service::get_connection(const std::string& url) {
  return ask<connection_handle>(outer_deadline(cfg_), get_conn_atom_v, url);
}

caf::expected<jetstream_handle> connection_service::get_jetstream(const std::string& url) {
  return ask<jetstream_handle>(outer_deadline(cfg_), get_js_atom_v, url);
}

caf::expected<connection_scope> connection_service::open_scope(const std::string& url) {
  return ask<connection_scope>(outer_deadline(cfg_), scope_atom_v, url);
}

caf::expected<jetstream_scope> connection_service::open_jetstream_scope(const std::string& url) {
  return ask<jetstream_scope>(outer_deadline(cfg_), js_scope_atom_v, url);
}

caf::expected<lease> connection_service::lease(const std::string& url, caf::timespan wait) {
  auto w = wait > caf::timespan{0} ? wait : cfg_.lease_timeout;
  return ask<natsvisor::lease>(w + std::chrono::seconds(5), lease_atom_v, url, wait);
}

caf::error connection_service::publish(outgoing msg, const std::string& url) {
  auto r = ask<caf::unit_t>(outer_deadline(cfg_), pub_atom_v, url, std::move(msg));
  return r ? caf::error{} : std::move(r.error());
}

caf::expected<uint64_t> connection_service::publish_batch(std::vector<outgoing> batch,
                                                          const std::string& url) {
  return ask<uint64_t>(outer_deadline(cfg_), pub_atom_v, url, std::move(batch));
}

caf::expected<uint64_t> connection_service::publish_batch(packed_batch batch,
                                                          const std::string& url) {
  return ask<uint64_t>(outer_deadline(cfg_), pub_atom_v, url, std::move(batch));
}

caf::expected<nats_message> connection_service::request(outgoing msg, caf::timespan timeout,
                                                        const std::string& url) {
  return ask<nats_message>(outer_deadline(cfg_) + timeout, req_atom_v, url, std::move(msg),
                           timeout);
}

caf::expected<js_ack> connection_service::js_publish(outgoing msg, caf::timespan timeout,
                                                     const std::string& url) {
  return ask<js_ack>(outer_deadline(cfg_) + timeout, js_pub_atom_v, url, std::move(msg), timeout);
}

caf::expected<uint64_t> connection_service::subscribe(const std::string& subject,
                                                      const caf::actor& subscriber,
                                                      const std::string& queue_group,
                                                      const std::string& url) {
  return ask<uint64_t>(outer_deadline(cfg_), sub_atom_v, url, subject, queue_group, subscriber);
}

void connection_service::unsubscribe(uint64_t id, const std::string& url) {
  caf::anon_send(supervisor_, unsub_atom_v, url, id);
}

caf::expected<health_result> connection_service::health_check(const std::string& url) {
  return ask<health_result>(outer_deadline(cfg_), health_atom_v, url);
}

caf::error connection_service::close_connection(const std::string& url) {
  auto r = ask<caf::unit_t>(outer_deadline(cfg_), close_conn_atom_v, url);
  return r ? caf::error{} : std::move(r.error());
}

caf::error connection_service::reset(const std::string& url) {
  auto r = ask<caf::unit_t>(outer_deadline(cfg_), reset_atom_v, url);
  return r ? caf::error{} : std::move(r.error());
}

caf::expected<status_report> connection_service::status() {
  return ask<status_report>(outer_deadline(cfg_), status_atom_v);
}

void connection_service::watch(const caf::actor& watcher) {
  caf::anon_send(supervisor_, watch_atom_v, watcher);
}

void connection_service::unwatch(const caf::actor& watcher) {
  caf::anon_send(supervisor_, unwatch_atom_v, watcher);
}

} // namespace natsvisor
