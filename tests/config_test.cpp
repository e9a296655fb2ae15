#include <cstring>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <thread>

#include "api/config.hpp"
#include "messages/errors.hpp"

using namespace natsvisor;
using namespace std::chrono_literals;

namespace {

env_lookup no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    if (auto it = vars.find(name); it != vars.end())
      return it->second;
    return std::nullopt;
  };
}

caf::settings group(std::initializer_list<std::pair<const char*, caf::config_value>> xs) {
  caf::settings result;
  for (auto& [k, v] : xs)
    result[caf::string_view{k, std::strlen(k)}] = v;
  return result;
}

// The key an invalid_config error names, checked through its text.
void require_rejected(const caf::settings& g, const std::string& key) {
  auto s = parse_settings(g, no_env);
  REQUIRE_FALSE(s);
  CHECK(code_of(s.error()) == errc::invalid_config);
  CHECK_THAT(detail_of(s.error()), Catch::Contains("natsvisor." + key));
}

} // namespace

TEST_CASE("defaults keep the original service's keys and values", "[config]") {
  auto s = parse_settings(caf::settings{}, no_env);
  REQUIRE(s);
  CHECK(s->nats_url == "nats://localhost:4222");
  CHECK(s->connection_pool_size == 10);
  CHECK(s->connection_timeout == 10s);
  CHECK(s->policy.max_attempts == 5);
  CHECK(s->policy.base_delay == 2s);
}

TEST_CASE("values are read with units, plain seconds and command-line strings", "[config]") {
  auto s
    = parse_settings(group({{"nats_url", caf::config_value{std::string{"nats://a:1,nats://b:2"}}},
                            {"connection_pool_size", caf::config_value{int64_t{4}}},
                            {"connection_timeout", caf::config_value{caf::timespan{250ms}}},
                            {"reconnect_delay", caf::config_value{int64_t{3}}},
                            {"backoff_cap", caf::config_value{std::string{"1.5min"}}},
                            {"backoff_multiplier", caf::config_value{std::string{"1.5"}}},
                            {"max_reconnect_attempts", caf::config_value{std::string{"7"}}},
                            {"nats_send_asap", caf::config_value{std::string{"true"}}},
                            {"urls", caf::config_value{caf::config_value::list{
                                       caf::config_value{std::string{"nats://c:3"}}}}}}),
                     no_env);
  REQUIRE(s);
  CHECK(s->nats_url == "nats://a:1,nats://b:2");
  CHECK(s->connection_pool_size == 4);
  CHECK(s->connection_timeout == 250ms);
  CHECK(s->policy.base_delay == 3s);
  CHECK(s->policy.max_delay == 90s);
  CHECK(s->policy.multiplier == Approx(1.5));
  CHECK(s->policy.max_attempts == 7);
  CHECK(s->nats.send_asap);
  REQUIRE(s->urls.size() == 1);
  CHECK(s->urls[0] == "nats://c:3");
}

TEST_CASE("invalid values are rejected with a message naming the key", "[config][bad-input]") {
  require_rejected(group({{"bogus", caf::config_value{int64_t{1}}}}), "bogus");
  require_rejected(group({{"connection_pool_size", caf::config_value{int64_t{0}}}}),
                   "connection_pool_size");
  require_rejected(group({{"connection_pool_size", caf::config_value{int64_t{-3}}}}),
                   "connection_pool_size");
  require_rejected(group({{"connection_pool_size", caf::config_value{std::string{"abc"}}}}),
                   "connection_pool_size");
  require_rejected(group({{"connection_pool_size", caf::config_value{2.5}}}),
                   "connection_pool_size");
  require_rejected(group({{"connection_timeout", caf::config_value{std::string{"-5s"}}}}),
                   "connection_timeout");
  require_rejected(group({{"connection_timeout", caf::config_value{int64_t{0}}}}),
                   "connection_timeout");
  require_rejected(group({{"reconnect_delay", caf::config_value{std::string{"soon"}}}}),
                   "reconnect_delay");
  require_rejected(group({{"nats_reconnect_wait", caf::config_value{std::string{"500us"}}}}),
                   "nats_reconnect_wait");
  require_rejected(group({{"password", caf::config_value{std::string{"pw"}}}}), "password");
  require_rejected(group({{"max_reconnect_attempts", caf::config_value{int64_t{-1}}}}),
                   "max_reconnect_attempts");
  require_rejected(group({{"backoff_jitter", caf::config_value{1.5}}}), "backoff_jitter");
  require_rejected(group({{"backoff_multiplier", caf::config_value{0.5}}}), "backoff_multiplier");
  require_rejected(group({{"nats_url", caf::config_value{std::string{"http://x:1"}}}}), "nats_url");
  require_rejected(group({{"nats_url", caf::config_value{int64_t{4222}}}}), "nats_url");
  require_rejected(group({{"tls", caf::config_value{std::string{"maybe"}}}}), "tls");
  require_rejected(group({{"log_level", caf::config_value{std::string{"loud"}}}}), "log_level");
  require_rejected(group({{"reconnect_delay", caf::config_value{int64_t{10}}},
                          {"backoff_cap", caf::config_value{int64_t{5}}}}),
                   "backoff_cap");
}

TEST_CASE("a secret config value is never echoed whatever its type", "[config][bad-input][redact]") {
  using list = caf::config_value::list;
  for (auto key : {"password", "token", "creds_file"}) {
    for (auto value : {caf::config_value{int64_t{12345678}}, caf::config_value{12345678.5},
                       caf::config_value{list{caf::config_value{std::string{"12345678"}}}},
                       caf::config_value{caf::timespan{12345678}}}) {
      INFO("key: " << key << ", type: " << value.type_name());
      auto s = parse_settings(group({{"user", caf::config_value{std::string{"u"}}},
                                     {key, value}}),
                              no_env);
      REQUIRE_FALSE(s);
      CHECK_THAT(describe(s.error()), Catch::Contains(std::string{"natsvisor."} + key));
      CHECK_THAT(describe(s.error()), !Catch::Contains("12345678"));
    }
  }
}

TEST_CASE("a URL list with a wrongly typed element does not echo its credentials", "[config][bad-input][redact]") {
  using list = caf::config_value::list;
  auto s = parse_settings(
    group({{"urls", caf::config_value{list{caf::config_value{std::string{"nats://u:S3CR3T@h:1"}},
                                           caf::config_value{int64_t{5}}}}}}),
    no_env);
  REQUIRE_FALSE(s);
  CHECK_THAT(describe(s.error()), Catch::Contains("natsvisor.urls"));
  CHECK_THAT(describe(s.error()), !Catch::Contains("S3CR3T"));
}

TEST_CASE("a URL list given for nats_url does not echo its credentials", "[config][bad-input][redact]") {
  using list = caf::config_value::list;
  auto s = parse_settings(
    group({{"nats_url", caf::config_value{list{caf::config_value{std::string{"nats://u:S3CR3T@h:1"}}}}}}),
    no_env);
  REQUIRE_FALSE(s);
  CHECK_THAT(describe(s.error()), Catch::Contains("natsvisor.nats_url"));
  CHECK_THAT(describe(s.error()), !Catch::Contains("S3CR3T"));
}

TEST_CASE("keys holding secrets are recognised by name", "[config][redact]") {
  for (auto key : {"password", "token", "creds_file", "nkey_seed", "nkey_seed_file", "jwt",
                   "client_secret"})
    CHECK(secret_key(key));
  for (auto key : {"user", "nats_url", "tls_ca_file", "app_name"})
    CHECK_FALSE(secret_key(key));
}

TEST_CASE("NATS_URL from the environment applies only when the key is absent", "[config]") {
  auto env = env_of({{"NATS_URL", "nats://env-host:4333"}});
  auto from_env = parse_settings(caf::settings{}, env);
  REQUIRE(from_env);
  CHECK(from_env->nats_url == "nats://env-host:4333");
  auto from_cfg
    = parse_settings(group({{"nats_url", caf::config_value{std::string{"nats://cfg:1"}}}}), env);
  REQUIRE(from_cfg);
  CHECK(from_cfg->nats_url == "nats://cfg:1");
}

TEST_CASE("a malformed NATS_URL is rejected without showing its password", "[config][bad-input]") {
  auto s
    = parse_settings(caf::settings{}, env_of({{"NATS_URL", "nats://bob:s3cret@host:notaport"}}));
  REQUIRE_FALSE(s);
  CHECK(code_of(s.error()) == errc::invalid_config);
  CHECK_THAT(describe(s.error()), Catch::Contains("NATS_URL"));
  CHECK_THAT(describe(s.error()), !Catch::Contains("s3cret"));
}

TEST_CASE("the command line is parsed by CAF and validated by natsvisor", "[config]") {
  SECTION("valid values") {
    natsvisor::config cfg;
    const char* argv[]
      = {"prog", "--natsvisor.connection_pool_size=3", "--natsvisor.reconnect_delay=250ms"};
    REQUIRE_FALSE(cfg.parse(3, const_cast<char**>(argv)));
    auto s = parse_settings(cfg, no_env);
    REQUIRE(s);
    CHECK(s->connection_pool_size == 3);
    CHECK(s->policy.base_delay == 250ms);
  }
  SECTION("a non-numeric value names the key") {
    natsvisor::config cfg;
    const char* argv[] = {"prog", "--natsvisor.connection_pool_size=abc"};
    REQUIRE_FALSE(cfg.parse(2, const_cast<char**>(argv)));
    auto s = parse_settings(cfg, no_env);
    REQUIRE_FALSE(s);
    CHECK_THAT(detail_of(s.error()), Catch::Contains("natsvisor.connection_pool_size"));
  }
  SECTION("an unknown key is refused by the parser") {
    natsvisor::config cfg;
    const char* argv[] = {"prog", "--natsvisor.bogus=1"};
    CHECK(cfg.parse(2, const_cast<char**>(argv)));
  }
}

TEST_CASE("every documented default is itself accepted", "[config]") {
  auto& keys = documented_keys();
  CHECK(keys.size() >= 20);
  for (auto& k : keys) {
    std::string value = k.default_value;
    if (value == "[]" || value == "\"\"")
      continue; // lists and empty strings: nothing to give on a command line
    INFO("key " << k.key << " = " << value);
    CHECK(parse_settings(group({{k.key, caf::config_value{value}}}), no_env));
  }
}

TEST_CASE("natsvisor's scheduler defaults apply unless set before or parsed after", "[config][scheduler]") {
  auto moderate = [](const caf::actor_system_config& cfg) {
    return caf::get_or(cfg, "work-stealing.moderate-poll-attempts", size_t{12345});
  };
  {
    natsvisor::config cfg;
    CHECK(moderate(cfg) == 0); // CAF's own default is 500 sleeps of 50 us
    CHECK(caf::get_or(cfg, "work-stealing.relaxed-sleep-duration", caf::timespan{0})
          == caf::timespan{std::chrono::milliseconds(1)}); // CAF's: 10 ms
    // The number of workers stays CAF's: natsvisor sets none (see api/config.cpp).
    CHECK(caf::get_if(&cfg.content, "scheduler.max-threads") == nullptr);
  }
  {
    natsvisor::config cfg; // the command line wins over natsvisor's default
    REQUIRE_FALSE(cfg.parse(caf::actor_system_config::string_list{
      "--work-stealing.moderate-poll-attempts=500"}));
    CHECK(moderate(cfg) == 500);
  }
  {
    caf::actor_system_config cfg; // a value set before add_to stays
    cfg.set("work-stealing.moderate-poll-attempts", size_t{7});
    natsvisor::add_to(cfg);
    CHECK(moderate(cfg) == 7);
  }
}

TEST_CASE("subscription delivery threads and pending limits are validated", "[config][bad-input]") {
  auto d = parse_settings(caf::settings{}, no_env);
  REQUIRE(d);
  CHECK(d->subscription_delivery_threads == 4);
  CHECK(d->subscription_pending_messages == 65536);
  CHECK(d->subscription_pending_bytes == 64 * 1024 * 1024);
  // 0: nats.c's one thread per subscription.
  auto s = parse_settings(group({{"subscription_delivery_threads", caf::config_value{int64_t{0}}},
                                 {"subscription_pending_messages", caf::config_value{int64_t{10}}},
                                 {"subscription_pending_bytes", caf::config_value{int64_t{4096}}}}),
                          no_env);
  REQUIRE(s);
  CHECK(s->subscription_delivery_threads == 0);
  CHECK(s->subscription_pending_messages == 10);
  CHECK(s->subscription_pending_bytes == 4096);
  require_rejected(group({{"subscription_delivery_threads", caf::config_value{int64_t{-1}}}}),
                   "subscription_delivery_threads");
  require_rejected(group({{"subscription_delivery_threads", caf::config_value{int64_t{257}}}}),
                   "subscription_delivery_threads");
  require_rejected(group({{"subscription_pending_messages", caf::config_value{int64_t{0}}}}),
                   "subscription_pending_messages");
  require_rejected(group({{"subscription_pending_bytes", caf::config_value{int64_t{0}}}}),
                   "subscription_pending_bytes");
  require_rejected(
    group({{"subscription_pending_bytes", caf::config_value{int64_t{int64_t{1} << 31}}}}),
    "subscription_pending_bytes");
}
