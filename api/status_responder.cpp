#include "api/status_responder.hpp"

#include <unistd.h>

#include <cstdio>
#include <random>

#include "caf/all.hpp"

#include "api/requests.hpp"
#include "base/logging.hpp"
#include "messages/errors.hpp"
#include "nats/type_ids.hpp"

namespace natsvisor {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0: JSON must be valid UTF-8, and a reply must
// stay parseable whatever bytes an error text carries.
size_t utf8_length(const std::string& s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80)
      return 0;
  return n;
}

void put_string(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else if (auto n = utf8_length(s, i); n > 0) {
      out.append(s, i, n);
      i += n;
      continue;
    } else {
      out += '?'; // not UTF-8
    }
    ++i;
  }
  out += '"';
}

// Any "scheme://user:secret@" left in a free text loses its credentials (errors are built from
// redacted URLs already; this guards against text that nats.c or a server wrote).
std::string scrub(std::string text) {
  for (size_t pos = text.find("://"); pos != std::string::npos; pos = text.find("://", pos + 3)) {
    auto start = pos + 3;
    auto end = text.find_first_of(" \t\r\n/,;\"'", start);
    auto at = text.substr(start, end == std::string::npos ? end : end - start).rfind('@');
    if (at != std::string::npos && at > 0)
      text.replace(start, at, "***");
  }
  return text;
}

template <class T>
void put_field(std::string& out, const char* key, const T& value, bool first = false) {
  if (!first)
    out += ',';
  put_string(out, key);
  out += ':';
  if constexpr (std::is_same<T, std::string>::value)
    put_string(out, value);
  else
    out += std::to_string(value);
}

std::string random_instance() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

} // namespace

status_identity make_status_identity(const std::string& app) {
  status_identity who;
  who.app = app;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0)
    who.host = host;
  who.pid = static_cast<int64_t>(getpid());
  who.instance = random_instance();
  return who;
}

std::string status_json(const status_identity& who, const status_report& report,
                        const std::optional<health_result>& health) {
  std::string out = "{";
  put_field(out, "version", 1, true);
  put_field(out, "app", who.app);
  put_field(out, "host", who.host);
  put_field(out, "pid", who.pid);
  put_field(out, "instance", who.instance);
  out += ",\"urls\":[";
  for (size_t i = 0; i < report.size(); ++i) {
    auto& u = report[i];
    out += i == 0 ? "{" : ",{";
    put_field(out, "url", u.url, true); // redacted by the supervisor
    put_field(out, "state", std::string{to_string(u.state)});
    put_field(out, "generation", u.generation);
    put_field(out, "restarts", u.restarts);
    put_field(out, "reconnects", u.reconnects);
    out += ",\"rtt_ms\":";
    if (health && health->healthy && health->url == u.url) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f",
                    std::chrono::duration<double, std::milli>(health->rtt).count());
      out += buf;
    } else {
      out += "null";
    }
    out += ",\"pool\":{";
    put_field(out, "size", u.pool.size, true);
    put_field(out, "active", u.pool.active);
    put_field(out, "idle", u.pool.idle);
    put_field(out, "waiting", u.pool.waiting);
    out += '}';
    put_field(out, "parked", u.parked);
    put_field(out, "subscriptions", u.subscriptions);
    // Message-path publishes held now, and dropped so far (all reasons; see metrics per reason).
    put_field(out, "buffered", u.publishes.buffered);
    put_field(out, "dropped", u.publishes.dropped_total());
    put_field(out, "last_error", scrub(u.last_error));
    out += '}';
  }
  out += "]}";
  return out;
}

namespace {

using responder_ptr = caf::stateful_actor<status_responder_state>*;

void answer(responder_ptr self, const std::string& reply_to, const status_report& report,
            std::optional<health_result> health) {
  outgoing msg{reply_to, status_json(self->state.who, report, health), {}};
  request_publish(self, self->state.svc, std::move(msg))
    .then([] { /* nop: published */ },
          [](caf::error& err) { log().warn("status reply not sent: {}", describe(err)); });
}

void subscribe(responder_ptr self, const std::string& subject) {
  request_subscribe(self, self->state.svc, subject, caf::actor_cast<caf::actor>(self))
    .then([](uint64_t) { /* nop: kept across restarts by the service */ },
          [subject](caf::error& err) {
            log().error("status responder cannot subscribe to {}: {}", subject, describe(err));
          });
}

} // namespace

caf::behavior status_responder(caf::stateful_actor<status_responder_state>* self, caf::actor svc,
                               std::shared_ptr<const settings> cfg) {
  auto& st = self->state;
  st.svc = std::move(svc);
  st.who = make_status_identity(cfg->app_name);
  st.health_timeout = cfg->health_timeout;
  self->monitor(st.svc);
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  subscribe(self, status_subject);
  subscribe(self, std::string{status_subject} + "." + cfg->app_name);
  return {
    [self](nats_message& msg) {
      if (msg.reply.empty())
        return; // nobody to answer
      auto reply_to = msg.reply;
      request_status(self, self->state.svc)
        .then(
          [self, reply_to](status_report& report) {
            // One round trip on the default URL (the one the request came through) gives the
            // RTT; the answer goes out either way, at worst after health_timeout.
            request_health(self, self->state.svc, {},
                           self->state.health_timeout + std::chrono::seconds(1))
              .then([self, reply_to,
                     report](health_result& h) { answer(self, reply_to, report, std::move(h)); },
                    [self, reply_to, report](caf::error&) {
                      answer(self, reply_to, report, std::nullopt);
                    });
          },
          [](caf::error& err) { log().warn("status request not answered: {}", describe(err)); });
    },
  };
}

} // namespace natsvisor
