// The limits a message is checked against before it reaches nats.c (nats/protocol.hpp): pure.
#include <catch2/catch.hpp>

#include "messages/errors.hpp"
#include "nats/protocol.hpp"

using namespace natsvisor;

namespace {

// The control line exactly as nats.c writes it, built independently of control_line_size.
std::string line_of(const std::string& subject, const std::string& reply, size_t hdr,
                    size_t payload) {
  std::string line = hdr == 0 ? "PUB " : "HPUB ";
  line += subject + " ";
  if (!reply.empty())
    line += reply + " ";
  if (hdr > 0)
    line += std::to_string(hdr) + " " + std::to_string(hdr + payload);
  else
    line += std::to_string(payload);
  return line + "\r\n";
}

} // namespace

TEST_CASE("the control line is counted as nats.c writes it", "[limits]") {
  for (size_t subject : {1, 9, 10, 99, 100, 4000, 4090, 10240})
    for (size_t reply : {0, 1, 30, 48})
      for (size_t hdr : {0, 12, 14, 99, 100, 1000})
        for (size_t payload : {0, 1, 9, 10, 99999, 100000, 1048576}) {
          auto line = line_of(std::string(subject, 's'), std::string(reply, 'r'), hdr, payload);
          INFO(subject << " " << reply << " " << hdr << " " << payload);
          CHECK(control_line_size(subject, reply, hdr, payload) == line.size());
        }
}

TEST_CASE("headers are counted as nats.c encodes them", "[limits]") {
  CHECK(encoded_header_size({}) == 0);
  CHECK(encoded_header_size({{"A", "b"}}) == std::string{"NATS/1.0\r\nA: b\r\n\r\n"}.size());
  CHECK(encoded_header_size({{"Nats-Msg-Id", "x1"}, {"K", ""}})
        == std::string{"NATS/1.0\r\nNats-Msg-Id: x1\r\nK: \r\n\r\n"}.size());
}

TEST_CASE("a message passes exactly when its control line and payload fit", "[limits]") {
  protocol_limits limits;
  limits.max_payload = 1024;
  for (size_t subject = 4060; subject <= 4100; ++subject)
    for (size_t reply : {0, 40})
      for (header_list headers : {header_list{}, header_list{{"K", "v"}}})
        for (size_t payload : {0, 5, 1000, 1024, 1025}) {
          outgoing m{std::string(subject, 'a'), std::string(payload, 'x'), headers};
          auto hdr = encoded_header_size(headers);
          auto line = line_of(m.subject, std::string(reply, 'r'), hdr, payload).size();
          auto err = check_limits(limits, m, reply, "nats://h:1");
          INFO(subject << " " << reply << " " << hdr << " " << payload);
          if (line > 4096)
            CHECK(code_of(err) == errc::invalid_subject);
          else if (hdr + payload > 1024)
            CHECK(code_of(err) == errc::payload_too_large);
          else
            CHECK_FALSE(err);
        }
}

TEST_CASE("an unknown max_payload leaves the payload to nats.c", "[limits]") {
  protocol_limits limits; // max_payload 0: not connected yet
  CHECK_FALSE(check_limits(limits, outgoing{"a.b", std::string(10 << 20, 'x'), {}}, 0, ""));
  CHECK(code_of(check_limits(limits, outgoing{std::string(10240, 'a'), "x", {}}, 0, ""))
        == errc::invalid_subject);
}

TEST_CASE("a configured max_control_line is honoured", "[limits]") {
  protocol_limits limits;
  limits.max_control_line = 16384;
  CHECK_FALSE(check_limits(limits, outgoing{std::string(10240, 'a'), "x", {}}, 0, ""));
  limits.max_control_line = 64;
  CHECK(code_of(check_limits(limits, outgoing{std::string(60, 'a'), "x", {}}, 0, ""))
        == errc::invalid_subject);
}

TEST_CASE("errors quote at most 64 bytes of a subject", "[limits]") {
  CHECK(quote_subject("a.b") == "'a.b'");
  CHECK(quote_subject("a\nb\x1b") == "'a?b?'");
  auto q = quote_subject(std::string(10240, 'a'));
  CHECK(q == "'" + std::string(64, 'a') + "'... (10240 bytes)");
  auto err = check_limits(protocol_limits{}, outgoing{std::string(10240, 'a'), "x", {}}, 0, "");
  CHECK(describe(err).size() < 300);
}

TEST_CASE("an unexpected JetStream reply is not quoted in the error", "[limits]") {
  auto ack = parse_js_ack("{\"secret\":\"payload S3CR3T\"}", "nats://h:1");
  REQUIRE_FALSE(ack);
  CHECK(code_of(ack.error()) == errc::jetstream_error);
  CHECK_THAT(describe(ack.error()), !Catch::Contains("S3CR3T"));
}
