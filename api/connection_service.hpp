#pragma once

#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/expected.hpp"

#include "base/logging.hpp"
#include "api/protocol.hpp"
#include "api/requests.hpp"
#include "api/config.hpp"
#include "api/metrics.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

/// The connection service for blocking code (main, tests, threads outside actors): owns the
/// supervisor actor and turns each call into a request through a scoped_actor. Event-based
/// actors use the typed handle `api()` with `ask` (api/protocol.hpp) or the named helpers of
/// api/requests.hpp instead, and must not call these blocking functions.
class connection_service {
 public:
  /// Spawns the supervisor; URLs listed in `cfg.urls` start connecting at once. With
  /// `metrics_listen` set it also serves GET /metrics there (see metrics_error()).
  connection_service(caf::actor_system& sys, settings cfg);
  /// Stops the service: every connection is closed.
  ~connection_service();
  connection_service(const connection_service&) = delete;
  connection_service& operator=(const connection_service&) = delete;

  /// The service's typed handle: requests through it are checked at compile time.
  const connection_api& api() const noexcept { return api_; }
  /// The same actor untyped, e.g. to monitor or link it.
  const caf::actor& actor() const noexcept { return supervisor_; }

  /// Any request of connection_api, blocking: `svc.call(get_conn_atom_v, url)` is a
  /// caf::expected<connection_handle>; an empty answer is caf::unit_t. The named functions below
  /// are this call with their atoms.
  template <class... Ts>
  caf::expected<detail::answer_t<connection_api, Ts...>> call(Ts&&... xs);
  const settings& config() const noexcept { return cfg_; }

  caf::expected<connection_handle> get_connection(const std::string& url = {});
  caf::expected<jetstream_handle> get_jetstream(const std::string& url = {});
  caf::expected<connection_scope> open_scope(const std::string& url = {});
  caf::expected<jetstream_scope> open_jetstream_scope(const std::string& url = {});
  /// A real round trip; `healthy` is false (with the reason) when there is none.
  caf::expected<health_result> health_check(const std::string& url = {});
  /// An exclusive pooled connection; `wait` zero means the configured lease_timeout.
  caf::expected<natsvisor::lease> lease(const std::string& url = {},
                                        caf::timespan wait = caf::timespan{0});

  // The message path (the shared connection of the URL; works across restarts).
  /// Answered once nats.c took the message, or (connection down) once it was written on the
  /// next connection; errc::dropped when natsvisor could not keep it.
  caf::error publish(outgoing msg, const std::string& url = {});
  /// Answered only once the server has read the message (a round trip after it); errc::timeout
  /// when no round trip came within `timeout` (the message may still have arrived).
  caf::error publish_confirmed(outgoing msg, caf::timespan timeout = std::chrono::seconds(5),
                               const std::string& url = {});
  caf::expected<uint64_t> publish_batch(std::vector<outgoing> batch, const std::string& url = {});
  /// The cheapest batch form: one subject, payloads packed in one buffer.
  caf::expected<uint64_t> publish_batch(packed_batch batch, const std::string& url = {});
  caf::expected<nats_message> request(outgoing msg, caf::timespan timeout = std::chrono::seconds(5),
                                      const std::string& url = {});
  caf::expected<js_ack> js_publish(outgoing msg, caf::timespan timeout = std::chrono::seconds(5),
                                   const std::string& url = {});
  /// Messages arrive in `subscriber`'s mailbox as nats_message values.
  caf::expected<uint64_t> subscribe(const std::string& subject, const caf::actor& subscriber,
                                    const std::string& queue_group = {},
                                    const std::string& url = {});
  void unsubscribe(uint64_t id, const std::string& url = {});

  /// Closes the URL's connection and drops its JetStream context; a later request reopens it.
  caf::error close_connection(const std::string& url = {});
  /// Clears the failure history; revives a URL given up on.
  caf::error reset(const std::string& url = {});
  caf::expected<status_report> status();
  void watch(const caf::actor& watcher);
  void unwatch(const caf::actor& watcher);

  /// Runs `f(const connection_handle&)` inside a connection scope (the C++ form of the
  /// original `async with connection_scope()`): the scope ends however `f` ends, and an
  /// exception is logged and rethrown. Returns the error when no connection could be had.
  template <class F>
  caf::error with_connection(F&& f, const std::string& url = {}) {
    return with_scope(open_scope(url), std::forward<F>(f), "connection");
  }

  /// Same with `f(const jetstream_handle&)` (the original `jetstream_scope`).
  template <class F>
  caf::error with_jetstream(F&& f, const std::string& url = {}) {
    return with_scope(open_jetstream_scope(url), std::forward<F>(f), "JetStream");
  }

  /// Stops the metrics endpoint and the supervisor and waits until both are gone; idempotent.
  void stop();

  /// Why the metrics endpoint of `metrics_listen` could not start (the address is taken or not
  /// local: errc::invalid_config, also logged at error level); none when it runs or is off.
  /// The service itself works either way: metrics are not worth failing an application for.
  const caf::error& metrics_error() const noexcept { return metrics_error_; }

  /// The port GET /metrics is served on (the kernel's choice for port 0); 0 when it is not.
  int metrics_port() const noexcept { return metrics_ ? metrics_->port() : 0; }

 private:
  void start_metrics();

  template <class Scope, class F>
  caf::error with_scope(caf::expected<Scope> scope, F&& f, const char* what) {
    if (!scope)
      return std::move(scope.error());
    try {
      f(scope->handle());
    } catch (const std::exception& e) {
      log().error("error in {} scope of {}: {}", what, scope->handle().url(), e.what());
      throw;
    }
    return caf::none;
  }

  bool supervisor_alive() const;
  caf::error translate(caf::error err) const;

  // The route cache: a request naming a URL goes straight to that URL's supervisor, which the
  // router named once, skipping the router's mailbox (a flood of another URL's messages there
  // would delay it). A supervisor that ended (its URL had nothing left) bounces the request
  // unread; it is then sent through the router, which knows the URL's new supervisor.
  template <class T>
  static constexpr bool names_url() {
    return std::is_same<std::decay_t<T>, std::string>::value;
  }
  caf::actor route_of(caf::scoped_actor& self, const std::string& url);
  void forget_route(const std::string& url, const caf::actor& gone);
  void forget_routes();

  caf::actor_system& sys_;
  settings cfg_;
  caf::actor supervisor_;
  connection_api api_;
  std::mutex routes_mtx_;
  std::unordered_map<std::string, caf::actor> routes_; // guarded by routes_mtx_
  std::unique_ptr<metrics_endpoint> metrics_; // lives from the constructor to stop()
  caf::error metrics_error_;
};

template <class... Ts>
caf::expected<detail::answer_t<connection_api, Ts...>> connection_service::call(Ts&&... xs) {
  using answer = detail::answer_t<connection_api, Ts...>;
  if (!supervisor_)
    return make_error(errc::service_stopped, "the connection service was stopped");
  caf::scoped_actor self{sys_};
  // The supervisor answers by itself at its own deadlines; this one only guards against a
  // supervisor that is gone.
  auto deadline = cfg_.request_timeout + cfg_.health_timeout + cfg_.lease_timeout
                  + std::chrono::seconds(5) + detail::extra_wait(xs...);
  caf::message msg = caf::make_message(std::forward<Ts>(xs)...); // checked by answer_t
  caf::actor dest = supervisor_;
  std::string url;
  if constexpr (sizeof...(Ts) >= 2
                && names_url<caf::detail::tl_at_t<caf::detail::type_list<Ts...>, 1>>()) {
    url = msg.get_as<std::string>(1);
    dest = route_of(self, url);
  }
  for (;;) {
    caf::expected<answer> result{caf::error{}};
    bool bounced = false;
    auto on_error = [&](caf::error& err) {
      if (err == caf::sec::request_receiver_down && dest != supervisor_)
        bounced = true; // unread: its URL supervisor ended
      else
        result = translate(std::move(err));
    };
    auto pending = self->request(dest, deadline, msg);
    if constexpr (std::is_same<answer, caf::unit_t>::value)
      pending.receive([&] { result = caf::unit; }, on_error);
    else
      pending.receive([&](answer& x) { result = std::move(x); }, on_error);
    if (!bounced)
      return result;
    forget_route(url, dest);
    dest = supervisor_;
  }
}

} // namespace natsvisor
