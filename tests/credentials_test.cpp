// The pure parts of credentials and TLS, without a server: how a refused connect is sorted, when
// TLS is required, which credential files are checked, the config keys, the nkey encoding the
// test fixture relies on.

#include <catch2/catch.hpp>

#include <cstring>

#include "config/settings.hpp"
#include "credentials.hpp"
#include "nats/options.hpp"
#include "nats/status.hpp"

using namespace natsvisor;

namespace {

caf::settings group(std::initializer_list<std::pair<const char*, caf::config_value>> xs) {
  caf::settings result;
  for (auto& [k, v] : xs)
    result[caf::string_view{k, std::strlen(k)}] = v;
  return result;
}

env_lookup no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };

// Well-formed keys of fixed bytes (no key pair: only the syntax matters here).
const unsigned char some_bytes[32]
  = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const std::string user_key = testing::nkey_encode_public(some_bytes);

} // namespace

TEST_CASE("refused credentials and TLS are sorted as permanent with the reason",
          "[auth][tls][status]") {
  auto auth = classify_connect_failure(NATS_CONNECTION_AUTH_FAILED,
                                       "(conn.c:1905): Authorization Violation", false);
  CHECK(auth.code == errc::auth_failed);
  CHECK(auth.detail == "the server rejected the credentials: Authorization Violation");
  auto plain = classify_connect_failure(NATS_SECURE_CONNECTION_WANTED,
                                        "(conn.c:773): Secure Connection not available", false);
  CHECK(plain.code == errc::tls_failed);
  CHECK_THAT(plain.detail, Catch::Contains("nothing was sent"));
  auto verify = classify_connect_failure(
    NATS_SSL_ERROR, "(conn.c:733): SSL handshake error: 20:unable to get local issuer certificate",
    true);
  CHECK(verify.code == errc::tls_failed);
  CHECK(verify.detail
        == "TLS handshake failed: SSL handshake error: 20:unable to get local "
           "issuer certificate");
  CHECK(classify_connect_failure(NATS_SECURE_CONNECTION_REQUIRED, "", false).code
        == errc::tls_failed);
}

TEST_CASE("a connection dropped right after the TLS handshake is a missing client certificate "
          "only under TLS",
          "[tls][status]") {
  auto text = "(conn.c:1909): Expected 'PONG', got ''";
  auto tls = classify_connect_failure(NATS_PROTOCOL_ERROR, text, true);
  CHECK(tls.code == errc::tls_failed);
  CHECK_THAT(tls.detail, Catch::Contains("client certificate"));
  // Without TLS the same line is a server that answered nonsense: worth another attempt.
  CHECK(classify_connect_failure(NATS_PROTOCOL_ERROR, text, false).code == errc::connect_failed);
  CHECK(classify_connect_failure(NATS_PROTOCOL_ERROR, "Expected 'PONG', got '-ERR x'", true).code
        == errc::connect_failed);
}

TEST_CASE("no server, timeouts and anything else stay transient connect failures",
          "[auth][status]") {
  for (auto s : {NATS_NO_SERVER, NATS_TIMEOUT, NATS_IO_ERROR, NATS_ERR, NATS_CONNECTION_CLOSED}) {
    INFO(natsStatus_GetText(s));
    auto r = classify_connect_failure(s, "", true);
    CHECK(r.code == errc::connect_failed);
    CHECK(r.detail == natsStatus_GetText(s)); // no text: nats.c's status names it
  }
  CHECK(classify_connect_failure(NATS_NO_SERVER, "(conn.c:2088): No server available", false).detail
        == "No server available");
}

TEST_CASE("TLS is required by tls = true or a tls:// server in the list", "[tls]") {
  settings cfg;
  CHECK_FALSE(requires_tls({"nats://a:4222", "nats://b:4222"}, cfg));
  CHECK(requires_tls({"nats://a:4222", "tls://b:4222"}, cfg));
  CHECK(requires_tls({"TLS://user:pw@a:4222"}, cfg));
  CHECK_FALSE(may_use_tls({"nats://a:4222"}, cfg));
  cfg.tls_ca_file = "/ca.pem";
  CHECK_FALSE(requires_tls({"nats://a:4222"}, cfg));
  CHECK(may_use_tls({"nats://a:4222"}, cfg));
  cfg = settings{};
  cfg.tls = true;
  CHECK(requires_tls({"nats://a:4222"}, cfg));
}

TEST_CASE("credential files that cannot be read are invalid_config naming key and path", "[auth]") {
  settings cfg;
  CHECK_FALSE(check_credential_files(cfg, "nats://h:1"));
  cfg.creds_file = "/nonexistent/user.creds";
  auto err = check_credential_files(cfg, "nats://h:1");
  CHECK(code_of(err) == errc::invalid_config);
  CHECK(detail_of(err)
        == "creds_file '/nonexistent/user.creds' cannot be read: No such file or directory");
  cfg = settings{};
  cfg.nkey_seed_file = "/nonexistent/user.nk";
  CHECK_THAT(detail_of(check_credential_files(cfg, "")), Catch::StartsWith("nkey_seed_file"));
  cfg.nkey_seed_file = "/etc/hostname";
  CHECK_FALSE(check_credential_files(cfg, ""));
}

TEST_CASE("nkey and nkey_seed_file are configured together and checked", "[auth][config]") {
  auto s = parse_settings(group({{"nkey", caf::config_value{user_key}},
                                 {"nkey_seed_file", caf::config_value{"/run/user.nk"}}}),
                          no_env);
  REQUIRE(s);
  CHECK(s->nkey == user_key);
  CHECK(s->nkey_seed_file == "/run/user.nk");
  CHECK_FALSE(parse_settings(group({{"nkey", caf::config_value{user_key}}}), no_env));
  CHECK_FALSE(
    parse_settings(group({{"nkey_seed_file", caf::config_value{"/run/user.nk"}}}), no_env));
  CHECK_FALSE(parse_settings(group({{"nkey", caf::config_value{user_key}},
                                    {"nkey_seed_file", caf::config_value{"/run/user.nk"}},
                                    {"creds_file", caf::config_value{"/run/user.creds"}}}),
                             no_env));
  // A seed where the public key belongs is refused without being echoed.
  auto seed = testing::nkey_encode_seed(some_bytes);
  auto wrong = parse_settings(group({{"nkey", caf::config_value{seed}},
                                     {"nkey_seed_file", caf::config_value{"/run/user.nk"}}}),
                              no_env);
  REQUIRE_FALSE(wrong);
  CHECK(describe(wrong.error()).find(seed) == std::string::npos);
}

TEST_CASE("a password or token of the wrong type is refused without being echoed",
          "[auth][config]") {
  for (auto key : {"password", "token"}) {
    INFO(key);
    auto s = parse_settings(
      group({{"user", caf::config_value{"alice"}}, {key, caf::config_value{int64_t{987654321}}}}),
      no_env);
    REQUIRE_FALSE(s);
    CHECK(describe(s.error()).find("987654321") == std::string::npos);
  }
}

TEST_CASE("the test fixture encodes nkeys as NATS does", "[auth]") {
  // CRC-16/XMODEM's check value.
  const char* check = "123456789";
  CHECK(testing::nkey_crc16(reinterpret_cast<const unsigned char*>(check), 9) == 0x31C3);
  unsigned char zero[32] = {};
  auto pub = testing::nkey_encode_public(zero);
  CHECK(pub.size() == 56);
  CHECK(pub.substr(0, 2) == "UA"); // prefix byte 20 << 3, then zero bits
  auto seed = testing::nkey_encode_seed(zero);
  CHECK(seed.size() == 58);
  CHECK(seed.substr(0, 2) == "SU");
}
