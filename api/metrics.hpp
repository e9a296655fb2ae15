#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "caf/expected.hpp"

#include "messages/types.hpp"

namespace natsvisor {

/// The Content-Type of Prometheus' text exposition format 0.0.4.
constexpr const char prometheus_content_type[] = "text/plain; version=0.0.4; charset=utf-8";

/// Pure: the status report in Prometheus text exposition format 0.0.4, one sample per URL and
/// family, every sample labelled `app` and `url` (the redacted URL status carries; the report
/// holds no secrets). Families (prefix `natsvisor_`):
/// - counters: restarts_total, reconnects_total, {in,out}_messages_total, {in,out}_bytes_total,
///   pool_{waits,timeouts,created,closed,leaks}_total;
/// - gauges: connection_state (one-hot: one sample per state with label `state`, 1 for the
///   current one, so `natsvisor_connection_state{state="gave_up"} == 1` alerts without a table
///   of codes), generation, parked_requests, active_scopes, subscriptions,
///   pool_{size,active,idle,waiting}.
/// HELP and TYPE appear once per family, also when the report is empty.
std::string to_prometheus(const status_report& report, const std::string& app);

/// Pure: a label value escaped as the format wants it (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

/// An HTTP server on its own thread answering GET /metrics with what `scrape` returns, or 503
/// when it returns nothing; every other path is 404. Destroying it stops the server and joins
/// its threads.
class metrics_endpoint {
 public:
  /// Called on the server's thread once per scrape: the exposition text, or nothing.
  using scrape_fn = std::function<std::optional<std::string>()>;

  /// Binds `listen` ("host:port"; port 0 lets the kernel choose) before returning, so a taken
  /// port or an address that is not local fails here, as errc::invalid_config naming the key.
  static caf::expected<std::unique_ptr<metrics_endpoint>> start(const std::string& listen,
                                                                scrape_fn scrape);
  ~metrics_endpoint();
  metrics_endpoint(const metrics_endpoint&) = delete;
  metrics_endpoint& operator=(const metrics_endpoint&) = delete;

  /// The port it listens on (the kernel's choice when the configured port was 0).
  int port() const noexcept;

 private:
  struct impl;
  explicit metrics_endpoint(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_; // keeps <httplib.h> out of natsvisor's public headers
};

} // namespace natsvisor
