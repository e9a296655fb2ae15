#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "caf/actor_system_config.hpp"
#include "caf/expected.hpp"
#include "caf/settings.hpp"
#include "caf/timespan.hpp"

#include "config/restart_policy.hpp"

namespace natsvisor {

/// nats.c's own reconnect and ping settings: how one connection recovers by itself before
/// the supervisor has to start a fresh one.
struct nats_options {
  int max_reconnect = 60;                                          // nats_max_reconnect
  caf::timespan reconnect_wait = std::chrono::seconds(2);          // nats_reconnect_wait
  caf::timespan reconnect_jitter = std::chrono::milliseconds(100); // nats_reconnect_jitter
  // A hung server (alive to the kernel, so TCP stays up) is noticed only by unanswered PINGs:
  // after more than max_pings_out of them, i.e. between max_pings_out and max_pings_out + 1
  // intervals after it stopped: 1.5 to 1.8 s, leaving 0.2 s of a 2 s budget for nats.c's timer
  // thread and the callbacks on a loaded machine. A false alarm needs a PONG later than
  // max_pings_out x ping_interval = 1.5 s on loopback or a LAN (where a round trip takes well
  // under a millisecond): the server or nats.c's reader starved of CPU for 1.5 s, far beyond
  // what a loaded 2-core machine shows; it would cost one reconnect, no subscription. Longer
  // intervals with fewer PINGs out would lower that threshold for the same 2 s; more, shorter
  // ones raise it towards 2 s at the price of more PINGs (each takes the connection's lock on
  // nats.c's shared timer thread; 3.3 per second and connection here). nats.c's own default
  // (2 minutes x 2) left a hung server unnoticed for up to 6 minutes. Not covered: a publisher
  // that fills the socket buffers of a hung server blocks nats.c in send() holding the
  // connection's lock, and the PINGs wait behind it until the server resumes; nats.c's write
  // deadline would end that wait, but in 3.4.1 it expires spuriously under concurrent reads
  // (tests/hung_test.cpp), so it stays off.
  caf::timespan ping_interval = std::chrono::milliseconds(300);    // nats_ping_interval
  int max_pings_out = 5;                                           // nats_max_pings_out
  int reconnect_buf_size = 8 * 1024 * 1024; // nats_reconnect_buf_size (bytes)
  bool send_asap = false;                   // nats_send_asap
};

/// Everything natsvisor reads from configuration, validated.
struct settings {
  std::string nats_url = "nats://localhost:4222";
  std::vector<std::string> urls; ///< connected eagerly at start (the default URL is lazy)
  int connection_pool_size = 10;
  caf::timespan connection_timeout = std::chrono::seconds(10);
  /// How long a request waits for a connection that is (re)starting before `timeout`.
  caf::timespan request_timeout = std::chrono::seconds(10);
  restart_policy policy; ///< max_reconnect_attempts, reconnect_delay, backoff_*, ...
  bool escalate_on_give_up = false;
  caf::timespan lease_timeout = std::chrono::seconds(5);
  caf::timespan leak_threshold = std::chrono::seconds(60);
  caf::timespan health_timeout = std::chrono::seconds(2);
  int max_parked = 50000;          ///< parked requests and lease waiters per URL
  int max_in_flight = 100000;      ///< requests awaiting a reply per connection
  int max_subscriptions = 100000;  ///< message-path subscriptions over all URLs
  /// Threads of nats.c's shared pool that deliver every message-path subscription's messages
  /// (process-wide; the pool only grows). 0: one thread per subscription, nats.c's default.
  int subscription_delivery_threads = 4;
  /// What one message-path subscription may hold that its subscriber has not consumed yet
  /// (in nats.c's queue, and handed over but not processed): past it messages are dropped and
  /// watchers get one slow_consumer event per episode. nats.c's defaults.
  int subscription_pending_messages = 65536;
  int subscription_pending_bytes = 64 * 1024 * 1024;
  /// The servers' max_control_line (bytes): a message whose PUB line is longer fails with
  /// invalid_subject before it is sent (the server would close the connection).
  int max_control_line = 4096;
  /// Message-path publishes one URL holds while it has no connection (messages, bytes).
  int publish_buffer_messages = 100000;
  int publish_buffer_bytes = 8 * 1024 * 1024;
  /// The message path's credit per URL (base/publish_credit.hpp): publishes on their way
  /// between their senders and nats.c; past it a sender is told overloaded.
  int publish_credit_messages = 100000;
  int publish_credit_bytes = 8 * 1024 * 1024;
  nats_options nats;
  // TLS and credentials (also from NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS). TLS is
  // required when `tls` is set or any server of the URL is tls://.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string user;
  std::string password;
  std::string token;
  std::string creds_file;
  std::string nkey;           ///< the user's nkey public key ("U..."); needs nkey_seed_file
  std::string nkey_seed_file; ///< file holding the user's nkey seed ("SU..."), a secret
  std::string log_level = "info";
  /// "host:port" the Prometheus endpoint (GET /metrics) listens on; empty: no endpoint.
  std::string metrics_listen;
  /// Names this application at the server ("<app_name>/<role>/<generation>") and in status
  /// replies: letters, digits, '-' and '_' only, so it is one NATS subject token.
  std::string app_name = "natsvisor";
  /// Answer `natsvisor status` requests over NATS (subjects natsvisor.status[.<app_name>]).
  bool status_responder = false;
};

/// A validated `metrics_listen` value. Port 0 lets the kernel choose.
struct listen_address {
  std::string host; ///< an address or name to bind; brackets of "[::1]" are removed
  int port = 0;
};

/// Pure: splits "host:port" ("[v6]:port" for IPv6), or nothing when it is malformed.
std::optional<listen_address> parse_listen_address(const std::string& text);

/// Longest accepted app_name: nats-server shows connection names in full, keep them readable.
constexpr size_t max_app_name = 64;

/// The configuration group natsvisor's keys live in: `natsvisor.nats_url`, ...
constexpr const char config_group[] = "natsvisor";

/// Whether the key holds a secret (password, token, nkey seed, credentials, JWT), judged by its
/// name so that keys added later are covered: errors about such a key never show its value.
bool secret_key(std::string_view key);

/// Reads an environment variable; injectable so tests do not depend on the process environment.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
std::optional<std::string> process_env(const std::string& name);

/// Pure: validates the `natsvisor` group of CAF's configuration (config file and command line)
/// and fills in defaults. `NATS_URL` (and the credential variables) apply when the key is
/// absent. Durations take CAF's units ("250ms", "2s") or plain numbers of seconds. Unknown
/// keys, wrong types, negative values and zeros where they make no sense fail with
/// errc::invalid_config naming the key.
caf::expected<settings> parse_settings(const caf::settings& group,
                                       const env_lookup& env = process_env);

/// Same, from a whole actor_system_config (its `natsvisor` group; absent means defaults).
caf::expected<settings> parse_settings(const caf::actor_system_config& cfg,
                                       const env_lookup& env = process_env);

/// Declares natsvisor's keys, so `--help` lists them and the command line accepts them.
/// (api/config.hpp's `add_to` also registers natsvisor's message types and error category.)
void declare_keys(caf::actor_system_config& cfg);

/// Every key of the group with its default and meaning, for --help and the README.
struct key_doc {
  const char* key;
  const char* default_value;
  const char* meaning;
};
const std::vector<key_doc>& documented_keys();

} // namespace natsvisor
