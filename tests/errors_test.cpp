#include <catch2/catch.hpp>

#include "nats/status.hpp"
#include "config/url.hpp"
#include "messages/errors.hpp"

using namespace natsvisor;

TEST_CASE("credentials are redacted from URLs and server lists", "[bad-input]") {
  CHECK(redact("nats://localhost:4222") == "nats://localhost:4222");
  CHECK(redact("nats://bob:s3cret@host:4222") == "nats://***@host:4222");
  CHECK(redact("nats://tok3n@host") == "nats://***@host");
  CHECK(redact("nats://a:p@ss@host:1") == "nats://***@host:1");
  CHECK(redact("nats://u:p@a:1,tls://t@c:3") == "nats://***@c:3");
  CHECK(redact("garbage:pw@x") == "***@x");
  // A ',' inside a password does not expose the rest of it.
  CHECK(redact("nats://alice:pa,ss@host:1") == "nats://***@host:1");
  CHECK(redact("nats://u:p,q@h1:1,nats://h2:2") == "nats://***@h1:1,nats://h2:2");
  CHECK(redact("nats://h1:1,nats://h2:2") == "nats://h1:1,nats://h2:2");
  auto r = parse_servers("nats://alice:pa,ss@host:1");
  REQUIRE_FALSE(r);
  CHECK_THAT(describe(r.error()), !Catch::Contains("pa,"));
  CHECK_THAT(describe(r.error()), !Catch::Contains("alice"));
}

TEST_CASE("no credential survives redaction whatever its shape", "[bad-input][redact]") {
  // Each URL holds the marker S3CR3T in a credential position (user, password or token):
  // neither redact nor parse_servers' error may show it.
  for (auto url : {"alice:S3CR3T@h1:1,nats://h2:2", // no scheme on the first entry
                   "S3CR3T@h1:1,nats://h2:2",       // a token, no scheme
                   "nats://u:p://S3CR3T@h:1",       // "://" inside a password
                   "nats://u:S3CR3T://x@h:1",
                   "nats://S3CR3T://x@h:1",
                   "S3CR3T://x@h:1",                // a user that looks like a scheme
                   "nats://u:S3CR3T,nats://x@h:1",  // ',' then a scheme inside a password
                   "nats://u:1,nats://S3CR3T@h:1",
                   "nats://u:p@S3CR3T,x@h:1",       // '@' and ',' inside a password
                   "nats://h0:0,S3CR3T@h1:1,tls://h2:2",
                   "nats://u:S3CR3T@h1:1,,nats://h2:2",
                   "tls://u:S3CR3T@h1:1 ,nats://h2:2"}) {
    INFO("URL: " << url);
    CHECK_THAT(redact(url), !Catch::Contains("S3CR3T"));
    if (auto r = parse_servers(url); !r)
      CHECK_THAT(describe(r.error()), !Catch::Contains("S3CR3T"));
  }
}

TEST_CASE("redaction keeps the scheme and what follows the last '@'", "[bad-input][redact]") {
  CHECK(redact("nats://h1:1,tls://h2:2") == "nats://h1:1,tls://h2:2");
  CHECK(redact("alice:pw@h1:1,nats://h2:2") == "***@h1:1,nats://h2:2");
  CHECK(redact("nats://u:p@a:1,nats://b:2,tls://t@c:3") == "nats://***@c:3");
  CHECK(redact("nats://h1:1,nats://u:p@h2:2") == "nats://***@h2:2");
  CHECK(redact("user://x@h") == "***@h"); // not a scheme natsvisor knows: may be a user
}

TEST_CASE("URLs and server lists are validated", "[bad-input]") {
  CHECK(parse_servers("nats://127.0.0.1:4222"));
  CHECK(parse_servers("tls://host"));
  CHECK(parse_servers("nats://user:pw@host:1"));
  CHECK(parse_servers("nats://[::1]:4222"));
  auto list = parse_servers("nats://a:1, nats://b:2");
  REQUIRE(list);
  CHECK(list->size() == 2);
  for (auto bad :
       {"", "   ", "localhost:4222", "http://host:1", "nats://", "nats://host:", "nats://host:0",
        "nats://host:70000", "nats://host:12ab", "nats://ho st:1", "nats://a:1,,nats://b:2",
        "nats://@host:1", "nats://[::1:4222", "nats://h$st:1"}) {
    INFO("URL: " << bad);
    auto r = parse_servers(bad);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::invalid_url);
  }
}

TEST_CASE("an invalid URL error carries the redacted URL, never the password", "[bad-input]") {
  auto r = parse_servers("nats://bob:s3cret@host:99999");
  REQUIRE_FALSE(r);
  CHECK(url_of(r.error()) == "nats://***@host:99999");
  CHECK_THAT(describe(r.error()), !Catch::Contains("s3cret"));
  CHECK_THAT(describe(r.error()), Catch::StartsWith("natsvisor.invalid_url"));
}

TEST_CASE("nats.c statuses map to natsvisor codes in one place", "[bad-input]") {
  CHECK(code_of(from_status(NATS_TIMEOUT, errc::nats_error, "u")) == errc::timeout);
  CHECK(code_of(from_status(NATS_CONNECTION_CLOSED, errc::nats_error, "u"))
        == errc::connection_closed);
  CHECK(code_of(from_status(NATS_INVALID_SUBJECT, errc::nats_error, "u")) == errc::invalid_subject);
  CHECK(code_of(from_status(NATS_MAX_PAYLOAD, errc::nats_error, "u")) == errc::payload_too_large);
  auto other = from_status(NATS_NO_SERVER, errc::connect_failed, "nats://h:1", "connect");
  CHECK(code_of(other) == errc::connect_failed);
  CHECK_THAT(detail_of(other), Catch::Contains(natsStatus_GetText(NATS_NO_SERVER)));
  CHECK(url_of(other) == "nats://h:1");
  caf::error e = errc::gave_up;
  CHECK(e == errc::gave_up);
  CHECK(e != errc::timeout);
}
