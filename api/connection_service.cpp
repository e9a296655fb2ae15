#include "api/connection_service.hpp"

#include "caf/all.hpp"

#include "api/status_responder.hpp"
#include "supervisors/connection_supervisor.hpp"

namespace natsvisor {

connection_service::connection_service(caf::actor_system& sys, settings cfg)
  : sys_(sys), cfg_(std::move(cfg)) {
  set_log_level(cfg_.log_level);
  auto shared_cfg = std::make_shared<const settings>(cfg_);
  supervisor_ = sys_.spawn(connection_supervisor, shared_cfg);
  api_ = as_connection_api(supervisor_);
  // Monitors the supervisor and quits with it; not linked, so a failing responder never takes
  // the connections down.
  if (cfg_.status_responder)
    sys_.spawn(status_responder, supervisor_, shared_cfg);
  if (!cfg_.metrics_listen.empty())
    start_metrics();
}

void connection_service::start_metrics() {
  // Runs on the HTTP server's thread, a plain thread where blocking is fine. The copy of the
  // handle keeps the function independent of supervisor_, which stop() clears.
  auto scrape = [&sys = sys_, supervisor = supervisor_,
                 app = cfg_.app_name]() -> std::optional<std::string> {
    caf::scoped_actor self{sys};
    std::optional<std::string> body;
    // Well below Prometheus' default scrape timeout (10 s): the scraper sees our 503.
    self->request(supervisor, std::chrono::seconds(5), status_atom_v)
      .receive([&](status_report& report) { body = to_prometheus(report, app); },
               [](caf::error&) { /* nothing: 503 */ });
    return body;
  };
  auto endpoint = metrics_endpoint::start(cfg_.metrics_listen, std::move(scrape));
  if (!endpoint) {
    metrics_error_ = std::move(endpoint.error());
    log().error("no metrics endpoint: {}", describe(metrics_error_));
    return;
  }
  metrics_ = std::move(*endpoint);
  log().info("metrics served on {} (port {}) at /metrics", cfg_.metrics_listen, metrics_->port());
}

connection_service::~connection_service() {
  stop();
}

void connection_service::stop() {
  // First the endpoint, so no scrape asks a supervisor on its way out; this joins its threads.
  metrics_.reset();
  if (!supervisor_)
    return;
  caf::scoped_actor self{sys_};
  self->monitor(supervisor_);
  self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) { /* nop: gone */ });
  supervisor_ = nullptr;
  api_ = nullptr;
  forget_routes();
}

caf::actor connection_service::route_of(caf::scoped_actor& self, const std::string& url) {
  {
    std::lock_guard<std::mutex> guard{routes_mtx_};
    if (auto it = routes_.find(url); it != routes_.end())
      return it->second;
  }
  // The router spawns the URL's supervisor if needed; a bad URL is refused (the router answers
  // the request itself then, with the reason).
  caf::actor found;
  self->request(supervisor_, std::chrono::seconds(5), get_svc_atom_v, url)
    .receive([&](caf::actor& a) { found = std::move(a); }, [](caf::error&) { /* the router */ });
  if (!found)
    return supervisor_;
  std::lock_guard<std::mutex> guard{routes_mtx_};
  if (routes_.size() >= 1024) // bounded: an application with many URLs asks the router again
    routes_.clear();
  routes_[url] = found;
  return found;
}

void connection_service::forget_route(const std::string& url, const caf::actor& gone) {
  std::lock_guard<std::mutex> guard{routes_mtx_};
  if (auto it = routes_.find(url); it != routes_.end() && it->second == gone)
    routes_.erase(it);
}

void connection_service::forget_routes() {
  std::lock_guard<std::mutex> guard{routes_mtx_};
  routes_.clear();
}

bool connection_service::supervisor_alive() const {
  auto ptr = caf::actor_cast<caf::abstract_actor*>(supervisor_);
  return ptr != nullptr && !ptr->getf(caf::abstract_actor::is_terminated_flag);
}

caf::error connection_service::translate(caf::error err) const {
  // Every error a caller sees belongs to natsvisor's category.
  if (err == caf::sec::request_timeout)
    return make_error(errc::timeout, "the connection service did not answer");
  if (err == caf::sec::request_receiver_down)
    return supervisor_alive()
             ? make_error(errc::connection_closed, "the connection serving it went away")
             : make_error(errc::service_stopped, "the connection service is gone");
  return err;
}

caf::expected<connection_handle> connection_service::get_connection(const std::string& url) {
  return call(get_conn_atom_v, url);
}

caf::expected<jetstream_handle> connection_service::get_jetstream(const std::string& url) {
  return call(get_js_atom_v, url);
}

caf::expected<connection_scope> connection_service::open_scope(const std::string& url) {
  return call(scope_atom_v, url);
}

caf::expected<jetstream_scope> connection_service::open_jetstream_scope(const std::string& url) {
  return call(js_scope_atom_v, url);
}

caf::expected<lease> connection_service::lease(const std::string& url, caf::timespan wait) {
  return call(lease_atom_v, url, wait);
}

caf::error connection_service::publish(outgoing msg, const std::string& url) {
  auto r = call(pub_atom_v, url, std::move(msg));
  return r ? caf::error{} : std::move(r.error());
}

caf::error connection_service::publish_confirmed(outgoing msg, caf::timespan timeout,
                                                 const std::string& url) {
  auto r = call(pub_conf_atom_v, url, std::move(msg), timeout);
  return r ? caf::error{} : std::move(r.error());
}

caf::expected<uint64_t> connection_service::publish_batch(std::vector<outgoing> batch,
                                                          const std::string& url) {
  return call(pub_atom_v, url, std::move(batch));
}

caf::expected<uint64_t> connection_service::publish_batch(packed_batch batch,
                                                          const std::string& url) {
  return call(pub_atom_v, url, std::move(batch));
}

caf::expected<nats_message> connection_service::request(outgoing msg, caf::timespan timeout,
                                                        const std::string& url) {
  return call(req_atom_v, url, std::move(msg),
                           timeout);
}

caf::expected<js_ack> connection_service::js_publish(outgoing msg, caf::timespan timeout,
                                                     const std::string& url) {
  return call(js_pub_atom_v, url, std::move(msg), timeout);
}

caf::expected<uint64_t> connection_service::subscribe(const std::string& subject,
                                                      const caf::actor& subscriber,
                                                      const std::string& queue_group,
                                                      const std::string& url) {
  return call(sub_atom_v, url, subject, queue_group, subscriber);
}

void connection_service::unsubscribe(uint64_t id, const std::string& url) {
  caf::anon_send(api_, unsub_atom_v, url, id);
}

caf::expected<health_result> connection_service::health_check(const std::string& url) {
  return call(health_atom_v, url);
}

caf::error connection_service::close_connection(const std::string& url) {
  auto r = call(close_conn_atom_v, url);
  return r ? caf::error{} : std::move(r.error());
}

caf::error connection_service::reset(const std::string& url) {
  auto r = call(reset_atom_v, url);
  return r ? caf::error{} : std::move(r.error());
}

caf::expected<status_report> connection_service::status() {
  return call(status_atom_v);
}

// The router passes a watcher on to every URL supervisor. Requests sent after this one go
// through the router again until it named the routes anew, so none overtakes the watcher there.
void connection_service::watch(const caf::actor& watcher) {
  caf::anon_send(api_, watch_atom_v, watcher);
  forget_routes();
}

void connection_service::unwatch(const caf::actor& watcher) {
  caf::anon_send(api_, unwatch_atom_v, watcher);
  forget_routes();
}

} // namespace natsvisor
