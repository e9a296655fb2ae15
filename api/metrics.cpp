#include "api/metrics.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include <httplib.h>

#include "config/settings.hpp"
#include "messages/errors.hpp"

namespace natsvisor {

namespace {

struct family {
  const char* name;
  const char* type; // "counter" or "gauge"
  const char* help;
  uint64_t (*value)(const url_status&);
};

// Counters are monotonic over the service's life (summed over generations by the supervisor);
// gauges are the value now. Counter names end in _total, as Prometheus' conventions ask.
const family families[] = {
  {"natsvisor_generation", "gauge", "Connection actor generation of the URL (1 = the first).",
   [](const url_status& s) { return s.generation; }},
  {"natsvisor_restarts_total", "counter", "Connection actors started after the first.",
   [](const url_status& s) { return s.restarts; }},
  {"natsvisor_reconnects_total", "counter", "Reconnects made by nats.c inside its connections.",
   [](const url_status& s) { return s.reconnects; }},
  {"natsvisor_in_messages_total", "counter", "Messages received on the shared connection.",
   [](const url_status& s) { return s.in_msgs; }},
  {"natsvisor_out_messages_total", "counter", "Messages sent on the shared connection.",
   [](const url_status& s) { return s.out_msgs; }},
  {"natsvisor_in_bytes_total", "counter", "Payload bytes received on the shared connection.",
   [](const url_status& s) { return s.in_bytes; }},
  {"natsvisor_out_bytes_total", "counter", "Payload bytes sent on the shared connection.",
   [](const url_status& s) { return s.out_bytes; }},
  {"natsvisor_parked_requests", "gauge", "Requests waiting for the connection to come up.",
   [](const url_status& s) { return s.parked; }},
  {"natsvisor_active_scopes", "gauge", "Connection and JetStream scopes not yet released.",
   [](const url_status& s) { return s.active_scopes; }},
  {"natsvisor_subscriptions", "gauge", "Message-path subscriptions.",
   [](const url_status& s) { return s.subscriptions; }},
  {"natsvisor_pool_size", "gauge", "Pooled connections that exist.",
   [](const url_status& s) { return s.pool.size; }},
  {"natsvisor_pool_active", "gauge", "Pooled connections leased.",
   [](const url_status& s) { return s.pool.active; }},
  {"natsvisor_pool_idle", "gauge", "Pooled connections connected and free.",
   [](const url_status& s) { return s.pool.idle; }},
  {"natsvisor_pool_waiting", "gauge", "Lease requests queued.",
   [](const url_status& s) { return s.pool.waiting; }},
  {"natsvisor_pool_waits_total", "counter", "Lease requests that had to queue.",
   [](const url_status& s) { return s.pool.waits; }},
  {"natsvisor_pool_timeouts_total", "counter", "Lease requests that ended in pool_exhausted.",
   [](const url_status& s) { return s.pool.timeouts; }},
  {"natsvisor_pool_created_total", "counter", "Pooled connection actors started.",
   [](const url_status& s) { return s.pool.created; }},
  {"natsvisor_pool_closed_total", "counter", "Pooled connection actors that ended.",
   [](const url_status& s) { return s.pool.closed; }},
  {"natsvisor_pool_leaks_total", "counter", "Leases reported as held past leak_threshold.",
   [](const url_status& s) { return s.pool.leaks; }},
  {"natsvisor_publish_buffered", "gauge",
   "Message-path publish messages held while the connection is down.",
   [](const url_status& s) { return s.publishes.buffered; }},
  {"natsvisor_publish_buffered_bytes", "gauge", "Bytes of the held publishes.",
   [](const url_status& s) { return s.publishes.buffered_bytes; }},
  {"natsvisor_publish_replayed_total", "counter",
   "Held publish messages written once a connection was up.",
   [](const url_status& s) { return s.publishes.replayed; }},
};

const drop_reason all_reasons[] = {drop_reason::over_bound, drop_reason::gave_up,
                                   drop_reason::closed, drop_reason::stopped,
                                   drop_reason::timeout, drop_reason::overloaded};

const connection_state all_states[] = {
  connection_state::connecting, connection_state::reconnecting, connection_state::connected,
  connection_state::restarting, connection_state::gave_up,      connection_state::closing,
  connection_state::closed,
};

void header(std::string& out, const char* name, const char* type, const char* help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

std::string labels(const std::string& app, const url_status& s) {
  return "app=\"" + escape_label_value(app) + "\",url=\"" + escape_label_value(s.url) + "\"";
}

} // namespace

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (auto c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string to_prometheus(const status_report& report, const std::string& app) {
  std::string out;
  // One sample with a label beside app and url.
  auto sample = [&](const char* name, const url_status& s, const char* label, const char* value,
                    uint64_t x) {
    out.append(name)
      .append("{")
      .append(labels(app, s))
      .append(",")
      .append(label)
      .append("=\"")
      .append(value)
      .append("\"} ")
      .append(std::to_string(x))
      .append("\n");
  };
  header(out, "natsvisor_connection_state", "gauge",
         "1 for the state the URL's connection is in, 0 for the others.");
  for (auto& s : report)
    for (auto state : all_states)
      sample("natsvisor_connection_state", s, "state", to_string(state), state == s.state ? 1 : 0);
  header(out, "natsvisor_publish_dropped_total", "counter",
         "Message-path publish messages natsvisor could not keep, by reason.");
  for (auto& s : report)
    for (auto reason : all_reasons)
      sample("natsvisor_publish_dropped_total", s, "reason", to_string(reason),
             s.publishes.dropped[static_cast<size_t>(reason)]);
  for (auto& f : families) {
    header(out, f.name, f.type, f.help);
    for (auto& s : report)
      out.append(f.name)
        .append("{")
        .append(labels(app, s))
        .append("} ")
        .append(std::to_string(f.value(s)))
        .append("\n");
  }
  return out;
}

struct metrics_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  int port = 0;
};

metrics_endpoint::metrics_endpoint(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

caf::expected<std::unique_ptr<metrics_endpoint>> metrics_endpoint::start(const std::string& listen,
                                                                         scrape_fn scrape) {
  auto fail = [&](const std::string& why) {
    return make_error(errc::invalid_config, "natsvisor.metrics_listen: " + why);
  };
  auto addr = parse_listen_address(listen);
  if (!addr)
    return fail("expected host:port, got \"" + listen + "\"");
  auto x = std::make_unique<impl>();
  auto& srv = x->server;
  // httplib's default pool starts at least 8 threads; scrapes come one at a time. Two, so a
  // scraper's idle keep-alive connection does not hold up a second client (curl).
  srv.new_task_queue = [] { return new httplib::ThreadPool(2); };
  srv.Get("/metrics", [scrape](const httplib::Request&, httplib::Response& res) {
    if (auto body = scrape()) {
      res.set_content(*body, prometheus_content_type);
    } else {
      res.status = 503;
      res.set_content("natsvisor: the connection service did not answer\n", "text/plain");
    }
  });
  // Unmatched paths get httplib's own 404.
  errno = 0;
  x->port = addr->port == 0 ? srv.bind_to_any_port(addr->host)
                            : (srv.bind_to_port(addr->host, addr->port) ? addr->port : -1);
  if (x->port < 0) {
    // httplib only says false; errno still holds what bind(2) or listen(2) said, if anything.
    auto why = errno != 0 ? std::string{" ("} + std::strerror(errno) + ")" : std::string{};
    return fail("cannot listen on " + listen + why);
  }
  auto* raw = x.get();
  x->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->listen_returned = true;
  });
  return std::unique_ptr<metrics_endpoint>{new metrics_endpoint(std::move(x))};
}

metrics_endpoint::~metrics_endpoint() {
  // httplib's stop() does nothing before the listening thread has marked the server running,
  // and that thread would then accept forever: wait for either (microseconds after start).
  while (!impl_->server.is_running() && !impl_->listen_returned)
    std::this_thread::yield();
  impl_->server.stop();
  impl_->thread.join();
}

int metrics_endpoint::port() const noexcept {
  return impl_->port;
}

} // namespace natsvisor
