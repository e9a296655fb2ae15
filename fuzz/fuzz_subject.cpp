// Subjects and limits: valid_subject and check_limits on arbitrary subjects and sizes. The
// control line is checked against the line itself, written as nats.c writes it; a message
// passes exactly when that line and its payload fit; quote_subject stays short and printable.

#include <string>

#include "fuzz_common.hpp"
#include "messages/errors.hpp"
#include "nats/protocol.hpp"

using namespace natsvisor;
using namespace natsvisor::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in{data, size};
  protocol_limits limits;
  limits.max_control_line = in.ConsumeIntegralInRange<size_t>(0, 1 << 16);
  limits.max_payload = in.ConsumeIntegralInRange<int64_t>(0, 1 << 24);
  auto reply = in.ConsumeIntegralInRange<size_t>(0, 256);
  header_list headers;
  for (auto n = in.ConsumeIntegralInRange(0, 3); n > 0; --n)
    headers.emplace_back(in.ConsumeRandomLengthString(16), in.ConsumeRandomLengthString(16));
  auto payload = in.ConsumeIntegralInRange<size_t>(0, 1 << 25);
  auto subject = in.ConsumeRemainingBytesAsString();
  (void) valid_subject(subject, false);
  (void) valid_subject(subject, true);

  auto hdr = encoded_header_size(headers);
  std::string line = hdr == 0 ? "PUB " : "HPUB ";
  line += subject + " ";
  if (reply > 0)
    line += std::string(reply, 'r') + " ";
  line += hdr == 0 ? std::to_string(payload)
                   : std::to_string(hdr) + " " + std::to_string(hdr + payload);
  line += "\r\n";
  if (control_line_size(subject.size(), reply, hdr, payload) != line.size())
    fail("control_line_size differs from the line nats.c writes", line.substr(0, 80));

  auto err = check_limits(limits, subject, reply, hdr, payload, "nats://h:1");
  auto expected = line.size() > limits.max_control_line ? errc::invalid_subject
                  : limits.max_payload > 0 && hdr + payload > static_cast<size_t>(limits.max_payload)
                    ? errc::payload_too_large
                    : errc::none;
  if (code_of(err) != expected)
    fail("check_limits decided otherwise than the line and sizes say", describe(err));
  if (describe(err).size() > 400)
    fail("an error about limits quotes too much", describe(err));

  auto quoted = quote_subject(subject);
  if (quoted.size() > 64 + 40)
    fail("quote_subject is too long", quoted);
  for (unsigned char c : quoted)
    if (c < 0x20 || c == 0x7f)
      fail("quote_subject kept a control character", quoted);
  return 0;
}
