#include "config/settings.hpp"

#include <cctype>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <map>

#include "caf/config_option_adder.hpp"
#include "caf/config_value.hpp"

#include "config/url.hpp"
#include "messages/errors.hpp"

// declare_keys uses the option meta states of CAF's own library, never copies of them made here.
// Each is a function-local static (a vague-linkage symbol shared across shared objects), and
// gcc (which built Debian's libcaf_core) and clang disagree on how to initialize it: gcc fills
// its function pointers statically and constructs only the type name under the guard, clang
// constructs all of it under the guard. In a clang-built program the dynamic linker binds CAF's
// references to the program's copy; CAF's gcc code then runs the guarded part first (for its own
// options), sets the guard, and leaves the function pointers null: the first parse of a
// natsvisor option called address 0. Declared as instantiated elsewhere, the program has no
// copy and everyone uses the library's (libcaf_core exports both functions).
extern template caf::config_option::meta_state*
caf::detail::option_meta_state_instance<std::string>();
extern template caf::config_option::meta_state*
caf::detail::option_meta_state_instance<std::vector<std::string>>();

namespace natsvisor {

namespace {

using caf::config_value;

// A value check returns the problem, or an empty string when the value was taken.
using setter = std::function<std::string(const config_value&, settings&)>;

struct key_spec {
  key_doc doc;
  setter set;
  bool is_list = false;
};

std::optional<int64_t> to_integer(const config_value& v) {
  if (auto i = caf::get_if<config_value::integer>(&v))
    return *i;
  if (auto s = caf::get_if<std::string>(&v)) {
    if (s->empty())
      return std::nullopt;
    char* end = nullptr;
    errno = 0;
    auto n = std::strtoll(s->c_str(), &end, 10);
    if (errno != 0 || *end != '\0')
      return std::nullopt;
    return n;
  }
  return std::nullopt;
}

std::optional<double> to_real(const config_value& v) {
  if (auto d = caf::get_if<config_value::real>(&v))
    return *d;
  if (auto i = caf::get_if<config_value::integer>(&v))
    return static_cast<double>(*i);
  if (auto s = caf::get_if<std::string>(&v)) {
    if (s->empty())
      return std::nullopt;
    char* end = nullptr;
    auto d = std::strtod(s->c_str(), &end);
    if (*end != '\0' || !std::isfinite(d))
      return std::nullopt;
    return d;
  }
  return std::nullopt;
}

std::optional<bool> to_bool(const config_value& v) {
  if (auto b = caf::get_if<bool>(&v))
    return *b;
  if (auto s = caf::get_if<std::string>(&v)) {
    if (*s == "true" || *s == "yes" || *s == "on" || *s == "1")
      return true;
    if (*s == "false" || *s == "no" || *s == "off" || *s == "0")
      return false;
  }
  return std::nullopt;
}

// CAF's timespan, a number of seconds, or a string such as "250ms", "2s", "1.5", "2min".
std::optional<caf::timespan> to_duration(const config_value& v) {
  using namespace std::chrono;
  if (auto t = caf::get_if<caf::timespan>(&v))
    return *t;
  auto from_seconds = [](double s) -> std::optional<caf::timespan> {
    if (!std::isfinite(s) || std::abs(s) > 1e9)
      return std::nullopt;
    return duration_cast<caf::timespan>(duration<double>(s));
  };
  if (auto i = caf::get_if<config_value::integer>(&v))
    return from_seconds(static_cast<double>(*i));
  if (auto d = caf::get_if<config_value::real>(&v))
    return from_seconds(*d);
  if (auto s = caf::get_if<std::string>(&v)) {
    if (s->empty())
      return std::nullopt;
    char* end = nullptr;
    auto n = std::strtod(s->c_str(), &end);
    std::string unit{end};
    static const std::map<std::string, double> scale{{"", 1.0},    {"s", 1.0},   {"ms", 1e-3},
                                                     {"us", 1e-6}, {"ns", 1e-9}, {"min", 60.0},
                                                     {"h", 3600.0}};
    if (end == s->c_str())
      return std::nullopt;
    auto it = scale.find(unit);
    if (it == scale.end())
      return std::nullopt;
    return from_seconds(n * it->second);
  }
  return std::nullopt;
}

std::string describe_value(const config_value& v) {
  return caf::to_string(v);
}

setter string_key(std::string settings::*field, bool allow_empty = true, bool secret = false) {
  return [=](const config_value& v, settings& s) -> std::string {
    auto str = caf::get_if<std::string>(&v);
    if (!str) // a secret given with the wrong type is still a secret: never echoed
      return secret ? std::string{"expected a string"}
                    : "expected a string, got " + describe_value(v);
    if (!allow_empty && str->empty())
      return "must not be empty";
    s.*field = *str;
    return {};
  };
}

template <class Field>
setter int_key(Field field, int64_t min, int64_t max) {
  return [=](const config_value& v, settings& s) -> std::string {
    auto n = to_integer(v);
    if (!n)
      return "expected a whole number, got " + describe_value(v);
    if (*n < min || *n > max)
      return "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got "
             + std::to_string(*n);
    field(s) = static_cast<int>(*n);
    return {};
  };
}

template <class Field>
setter duration_key(Field field, bool allow_zero) {
  return [=](const config_value& v, settings& s) -> std::string {
    auto d = to_duration(v);
    if (!d)
      return "expected a duration (e.g. 250ms, 2s or a number of seconds), got "
             + describe_value(v);
    // nats.c counts in milliseconds: a positive value below 1 ms would silently become zero.
    if (d->count() < 0 || (!allow_zero && *d < std::chrono::milliseconds(1)))
      return std::string{"must be "} + (allow_zero ? "zero or positive" : "at least 1ms") + ", got "
             + describe_value(v);
    field(s) = *d;
    return {};
  };
}

template <class Field>
setter real_key(Field field, double min, double max) {
  return [=](const config_value& v, settings& s) -> std::string {
    auto d = to_real(v);
    if (!d)
      return "expected a number, got " + describe_value(v);
    if (*d < min || *d > max)
      return "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got "
             + describe_value(v);
    field(s) = *d;
    return {};
  };
}

template <class Field>
setter bool_key(Field field) {
  return [=](const config_value& v, settings& s) -> std::string {
    auto b = to_bool(v);
    if (!b)
      return "expected true or false, got " + describe_value(v);
    field(s) = *b;
    return {};
  };
}

#define NV_FIELD(expr)                                                                             \
  [](settings & s) -> auto& {                                                                      \
    return s.expr;                                                                                 \
  }

const std::vector<key_spec>& specs() {
  static const std::vector<key_spec> result{
    {{"nats_url", "nats://localhost:4222",
      "default URL; a comma-separated list names the servers of one cluster (env NATS_URL)"},
     [](const config_value& v, settings& s) -> std::string {
       auto str = caf::get_if<std::string>(&v);
       if (!str) // not describe_value(v): a list of URLs may hold credentials
         return std::string{"expected a string, got a value of type "} + v.type_name();
       if (auto servers = parse_servers(*str); !servers)
         return detail_of(servers.error()) + " in " + redact(*str);
       s.nats_url = *str;
       return {};
     }},
    {{"urls", "[]", "URLs connected eagerly at start (others connect on first use)"},
     [](const config_value& v, settings& s) -> std::string {
       std::vector<std::string> urls;
       auto take = [&](const config_value& x) -> std::string {
         auto str = caf::get_if<std::string>(&x);
         if (!str) // not describe_value(v): the list's other URLs may hold credentials
           return std::string{"expected a list of strings, got an element of type "}
                  + x.type_name();
         if (auto servers = parse_servers(*str); !servers)
           return detail_of(servers.error()) + " in " + redact(*str);
         urls.push_back(*str);
         return {};
       };
       if (auto list = caf::get_if<config_value::list>(&v)) {
         for (auto& x : *list)
           if (auto problem = take(x); !problem.empty())
             return problem;
       } else if (auto problem = take(v); !problem.empty()) {
         return problem;
       }
       s.urls = std::move(urls);
       return {};
     },
     true},
    {{"connection_pool_size", "10", "connections per URL in the lease pool (1..1000)"},
     int_key(NV_FIELD(connection_pool_size), 1, 1000)},
    {{"connection_timeout", "10s", "nats.c's timeout for one connect attempt"},
     duration_key(NV_FIELD(connection_timeout), false)},
    {{"request_timeout", "10s",
      "how long a request waits for a (re)starting connection before a timeout error; an "
      "awaited publish held that long is dropped (dropped, reason timeout)"},
     duration_key(NV_FIELD(request_timeout), false)},
    {{"max_reconnect_attempts", "5",
      "supervisor restarts per failure episode before giving up (0 = give up at once)"},
     int_key(NV_FIELD(policy.max_attempts), 0, 1000000)},
    {{"reconnect_delay", "2s", "delay before the first restart of an episode"},
     duration_key(NV_FIELD(policy.base_delay), true)},
    {{"backoff_multiplier", "2.0", "factor between successive restart delays (>= 1)"},
     real_key(NV_FIELD(policy.multiplier), 1.0, 100.0)},
    {{"backoff_cap", "30s", "largest restart delay before jitter"},
     duration_key(NV_FIELD(policy.max_delay), false)},
    {{"backoff_jitter", "0.2", "random fraction (0..1) added to or taken from each delay"},
     real_key(NV_FIELD(policy.jitter), 0.0, 1.0)},
    {{"max_restarts", "20", "restarts allowed within restart_window before giving up"},
     int_key(NV_FIELD(policy.max_restarts), 1, 1000000)},
    {{"restart_window", "60s", "sliding window for max_restarts"},
     duration_key(NV_FIELD(policy.window), false)},
    {{"stable_period", "30s", "a connection up this long ends its failure episode"},
     duration_key(NV_FIELD(policy.stable_period), false)},
    {{"escalate_on_give_up", "false",
      "the supervisor exits with gave_up when it gives up on a URL"},
     bool_key(NV_FIELD(escalate_on_give_up))},
    {{"lease_timeout", "5s", "how long a lease request waits for a free pooled connection"},
     duration_key(NV_FIELD(lease_timeout), false)},
    {{"leak_threshold", "60s", "a lease held longer than this is reported"},
     duration_key(NV_FIELD(leak_threshold), false)},
    {{"health_timeout", "2s", "deadline of the round trip in health_check"},
     duration_key(NV_FIELD(health_timeout), false)},
    {{"max_parked", "50000",
      "requests (and lease waiters) one URL may hold while its connection (re)starts; "
      "past it a request fails at once with overloaded"},
     int_key(NV_FIELD(max_parked), 1, 10000000)},
    {{"max_in_flight", "100000",
      "requests one connection may have awaiting a reply; past it: overloaded"},
     int_key(NV_FIELD(max_in_flight), 1, 10000000)},
    {{"max_subscriptions", "100000",
      "message-path subscriptions over all URLs; past it: overloaded"},
     int_key(NV_FIELD(max_subscriptions), 1, 10000000)},
    {{"subscription_delivery_threads", "4",
      "nats.c's shared threads delivering the messages of all message-path subscriptions "
      "(process-wide, 1..256); 0: one thread per subscription"},
     int_key(NV_FIELD(subscription_delivery_threads), 0, 256)},
    {{"subscription_pending_messages", "65536",
      "messages one subscription may hold that its subscriber has not consumed; past it they "
      "are dropped and watchers get a slow_consumer event per episode"},
     int_key(NV_FIELD(subscription_pending_messages), 1, 100000000)},
    {{"subscription_pending_bytes", "67108864",
      "bytes one subscription may hold that its subscriber has not consumed (see "
      "subscription_pending_messages)"},
     int_key(NV_FIELD(subscription_pending_bytes), 1, 1 << 30)},
    {{"max_control_line", "4096",
      "the servers' max_control_line in bytes: a longer PUB line (subject, reply, sizes) fails "
      "with invalid_subject before it is sent, instead of the server closing the connection"},
     int_key(NV_FIELD(max_control_line), 256, 1 << 24)},
    {{"publish_buffer_messages", "100000",
      "message-path publishes one URL holds while it has no connection; past it a publish "
      "is dropped and its sender told (error or publishes_dropped event)"},
     int_key(NV_FIELD(publish_buffer_messages), 1, 100000000)},
    {{"publish_buffer_bytes", "8388608",
      "bytes (subject, payload, headers) of the publishes one URL holds while it has no "
      "connection; past it: dropped, sender told"},
     int_key(NV_FIELD(publish_buffer_bytes), 1, 1 << 30)},
    {{"publish_credit_messages", "100000",
      "message-path publishes of one URL on their way to nats.c (in the mailboxes of the "
      "supervisor and the connection actor); past it a publish is refused at once with "
      "overloaded (a publisher's publish returns false, an awaited one gets the error)"},
     int_key(NV_FIELD(publish_credit_messages), 1, 100000000)},
    {{"publish_credit_bytes", "8388608",
      "bytes (subject, payload, headers) of the publishes of one URL on their way to nats.c; "
      "past it: overloaded"},
     int_key(NV_FIELD(publish_credit_bytes), 1, 1 << 30)},
    {{"nats_max_reconnect", "60",
      "nats.c's reconnect attempts inside one connection before it closes for good"},
     int_key(NV_FIELD(nats.max_reconnect), 0, 1000000)},
    {{"nats_reconnect_wait", "2s", "nats.c's wait between reconnect attempts to one server"},
     duration_key(NV_FIELD(nats.reconnect_wait), false)},
    {{"nats_reconnect_jitter", "100ms", "nats.c's random extra reconnect wait"},
     duration_key(NV_FIELD(nats.reconnect_jitter), true)},
    {{"nats_ping_interval", "300ms",
      "nats.c's ping interval (a hung server is noticed after max_pings_out to "
      "max_pings_out + 1 intervals: 1.5 to 1.8 s by default)"},
     duration_key(NV_FIELD(nats.ping_interval), false)},
    {{"nats_max_pings_out", "5",
      "unanswered pings before nats.c drops the connection (a PONG later than "
      "max_pings_out x ping_interval counts as a hung server)"},
     int_key(NV_FIELD(nats.max_pings_out), 1, 1000)},
    {{"nats_reconnect_buf_size", "8388608",
      "bytes nats.c buffers for publishes while reconnecting"},
     int_key(NV_FIELD(nats.reconnect_buf_size), 0, 1 << 30)},
    {{"nats_send_asap", "false", "flush every publish at once (lower latency, less batching)"},
     bool_key(NV_FIELD(nats.send_asap))},
    {{"tls", "false", "require TLS (also required by any tls:// server in the URL)"},
     bool_key(NV_FIELD(tls))},
    {{"tls_ca_file", "\"\"", "CA certificates file"}, string_key(&settings::tls_ca_file)},
    {{"tls_cert_file", "\"\"", "client certificate chain file"},
     string_key(&settings::tls_cert_file)},
    {{"tls_key_file", "\"\"", "client key file"}, string_key(&settings::tls_key_file)},
    {{"user", "\"\"", "user name (env NATS_USER)"}, string_key(&settings::user)},
    {{"password", "\"\"", "password (env NATS_PASSWORD); never logged"},
     string_key(&settings::password, true, true)},
    {{"token", "\"\"", "token (env NATS_TOKEN); never logged"},
     string_key(&settings::token, true, true)},
    {{"creds_file", "\"\"",
      "NATS credentials file (env NATS_CREDS); a missing file is invalid_config"},
     string_key(&settings::creds_file)},
    {{"nkey", "\"\"", "the user's nkey public key (U...), with nkey_seed_file"},
     [](const config_value& v, settings& s) -> std::string {
       auto str = caf::get_if<std::string>(&v);
       if (!str)
         return "expected a string, got " + describe_value(v);
       // A seed ("SU...") here would be a secret in the wrong place: never echoed.
       if (!str->empty()
           && (str->size() != 56 || str->front() != 'U'
               || str->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != std::string::npos))
         return "expected a user public key: 56 characters starting with U (the seed goes in "
                "the file nkey_seed_file)";
       s.nkey = *str;
       return {};
     }},
    {{"nkey_seed_file", "\"\"",
      "file holding the user's nkey seed (SU...), with nkey; a missing file is invalid_config"},
     string_key(&settings::nkey_seed_file)},
    {{"log_level", "info", "trace, debug, info, warn, error or off"},
     [](const config_value& v, settings& s) -> std::string {
       auto str = caf::get_if<std::string>(&v);
       static const char* levels[] = {"trace", "debug", "info", "warn", "error", "off"};
       if (str)
         for (auto level : levels)
           if (*str == level) {
             s.log_level = *str;
             return {};
           }
       return "expected one of trace, debug, info, warn, error, off, got " + describe_value(v);
     }},
    {{"metrics_listen", "\"\"",
      "host:port of the Prometheus endpoint GET /metrics, e.g. 127.0.0.1:9464 (empty = off)"},
     [](const config_value& v, settings& s) -> std::string {
       auto str = caf::get_if<std::string>(&v);
       if (!str)
         return "expected a string, got " + describe_value(v);
       if (!str->empty() && !parse_listen_address(*str))
         return "expected host:port (e.g. 127.0.0.1:9464, [::1]:9464), got " + describe_value(v);
       s.metrics_listen = *str;
       return {};
     }},
    {{"app_name", "natsvisor",
      "names the connections at the server (<app_name>/shared/<gen>, <app_name>/pool-<slot>/"
      "<gen>) and the status replies; letters, digits, - and _ (at most 64)"},
     [](const config_value& v, settings& s) -> std::string {
       auto str = caf::get_if<std::string>(&v);
       if (!str)
         return "expected a string, got " + describe_value(v);
       if (str->empty() || str->size() > max_app_name)
         return "must have 1 to " + std::to_string(max_app_name) + " characters";
       // One subject token (natsvisor.status.<app_name>) and unambiguous between the '/' of a
       // connection name: no '.', '*', '>', '/', spaces or control characters.
       for (unsigned char c : *str)
         if (!std::isalnum(c) && c != '-' && c != '_')
           return "may hold only letters, digits, '-' and '_', got " + describe_value(v);
       s.app_name = *str;
       return {};
     }},
    {{"status_responder", "false",
      "answer `natsvisor status` over NATS on natsvisor.status and natsvisor.status.<app_name>"},
     bool_key(NV_FIELD(status_responder))},
  };
  return result;
}

#undef NV_FIELD

// CAF 0.17 keeps the option set protected; naming it through a derived class is allowed.
struct option_access : caf::actor_system_config {
  static caf::config_option_set& of(caf::actor_system_config& cfg) {
    return cfg.*(&option_access::custom_options_);
  }
};

// CAF 0.17's string_view takes a plain `const char*` only with gcc.
caf::string_view view(const char* s) {
  return {s, std::strlen(s)};
}

caf::error config_error(const std::string& key, const std::string& problem) {
  return make_error(errc::invalid_config, std::string{config_group} + "." + key + ": " + problem);
}

} // namespace

bool secret_key(std::string_view key) {
  for (std::string_view word : {"password", "token", "seed", "creds", "secret", "jwt", "nkey"})
    if (key.find(word) != std::string_view::npos)
      return true;
  return false;
}

std::optional<std::string> process_env(const std::string& name) {
  if (auto value = std::getenv(name.c_str()))
    return std::string{value};
  return std::nullopt;
}

std::optional<listen_address> parse_listen_address(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return std::nullopt;
  listen_address result;
  result.host = text.substr(0, colon);
  if (result.host.front() == '[') {
    if (result.host.size() < 3 || result.host.back() != ']')
      return std::nullopt;
    result.host = result.host.substr(1, result.host.size() - 2);
  } else if (result.host.find(':') != std::string::npos) {
    return std::nullopt; // an IPv6 address needs brackets, or its port is ambiguous
  }
  for (auto c : result.host)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '[' || c == ']' || c == '/')
      return std::nullopt;
  auto port = text.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  result.port = std::stoi(port);
  if (result.port > 65535)
    return std::nullopt;
  return result;
}

caf::expected<settings> parse_settings(const caf::settings& group, const env_lookup& env) {
  settings result;
  auto& all = specs();
  for (auto& kv : group) {
    // Not a structured binding: C++17 lambdas cannot capture those (clang refuses).
    const auto& key = kv.first;
    const auto& value = kv.second;
    auto spec
      = std::find_if(all.begin(), all.end(), [&](const key_spec& x) { return key == x.doc.key; });
    if (spec == all.end())
      return config_error(key, "unknown key (see the README's table of keys)");
    // A secret's problem may quote its value ("expected a string, got 12345678"): only the
    // value's type is named, decided here for every secret key, present or future.
    if (auto problem = spec->set(value, result); !problem.empty())
      return config_error(key, secret_key(key) ? std::string{"invalid value of type "}
                                                   + value.type_name() + " (secrets are not shown)"
                                               : problem);
  }
  // Environment fall-backs apply only where the configuration is silent.
  auto fallback = [&](const char* key, const char* var, std::string settings::*field,
                      bool is_url) -> caf::error {
    if (group.count(caf::string_view{key, std::strlen(key)}) != 0 || !env)
      return caf::none;
    auto value = env(var);
    if (!value || value->empty())
      return caf::none;
    if (is_url)
      if (auto servers = parse_servers(*value); !servers)
        return make_error(errc::invalid_config, std::string{"environment variable "} + var + ": "
                                                  + detail_of(servers.error()) + " in "
                                                  + redact(*value));
    result.*field = *value;
    return caf::none;
  };
  if (auto err = fallback("nats_url", "NATS_URL", &settings::nats_url, true))
    return err;
  fallback("user", "NATS_USER", &settings::user, false);
  fallback("password", "NATS_PASSWORD", &settings::password, false);
  fallback("token", "NATS_TOKEN", &settings::token, false);
  fallback("creds_file", "NATS_CREDS", &settings::creds_file, false);
  if (result.policy.max_delay < result.policy.base_delay)
    return config_error("backoff_cap", "must not be below reconnect_delay");
  if (!result.token.empty() && !result.user.empty())
    return config_error("token", "use either a token or a user, not both");
  if (!result.password.empty() && result.user.empty())
    return config_error("password", "a password needs a user");
  if (result.nkey.empty() != result.nkey_seed_file.empty())
    return config_error(result.nkey.empty() ? "nkey" : "nkey_seed_file",
                        "nkey and nkey_seed_file go together");
  if (!result.nkey.empty() && !result.creds_file.empty())
    return config_error("nkey", "use either an nkey or a credentials file, not both");
  return result;
}

caf::expected<settings> parse_settings(const caf::actor_system_config& cfg, const env_lookup& env) {
  auto it = cfg.content.find(config_group);
  if (it == cfg.content.end())
    return parse_settings(caf::settings{}, env);
  auto group = caf::get_if<caf::settings>(&it->second);
  if (!group)
    return make_error(errc::invalid_config, std::string{config_group} + " must be a group");
  return parse_settings(*group, env);
}

void declare_keys(caf::actor_system_config& cfg) {
  // Every key is declared as a string (lists as string lists) and typed by parse_settings:
  // CAF's own parsers would reject values with messages that do not name natsvisor's key,
  // and silently turn "-5s" into zero.
  caf::config_option_adder adder{option_access::of(cfg), config_group};
  for (auto& spec : specs()) {
    if (spec.is_list)
      adder.add<std::vector<std::string>>(view(spec.doc.key), view(spec.doc.meaning));
    else
      adder.add<std::string>(view(spec.doc.key), view(spec.doc.meaning));
  }
}

const std::vector<key_doc>& documented_keys() {
  static const std::vector<key_doc> result = [] {
    std::vector<key_doc> docs;
    for (auto& spec : specs())
      docs.push_back(spec.doc);
    return docs;
  }();
  return result;
}

} // namespace natsvisor
