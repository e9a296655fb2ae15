// JetStream acknowledgements: parse_js_ack on arbitrary replies. It must never crash, read out
// of bounds or accept a reply without a stream and a sequence; an unexpected reply is never
// quoted in the error (it may be message data from whatever answered on the subject).

#include <string>

#include "fuzz_common.hpp"
#include "messages/errors.hpp"
#include "nats/protocol.hpp"

using namespace natsvisor;
using namespace natsvisor::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A std::string with exactly the input's bytes: ASan sees any read past them.
  std::string json(reinterpret_cast<const char*>(data), size);
  auto ack = parse_js_ack(json, "nats://h:1");
  if (ack) {
    if (json.find("\"stream\"") == std::string::npos || json.find("\"seq\"") == std::string::npos)
      fail("an ack without stream or seq was accepted", json);
    return 0;
  }
  auto code = code_of(ack.error());
  if (code != errc::jetstream_error && code != errc::no_stream)
    fail("an unexpected error code", describe(ack.error()));
  // Only an API error's own description is quoted; anything else is not.
  if (json.find("\"error\"") == std::string::npos && describe(ack.error()).size() > 200)
    fail("an unexpected reply is quoted", describe(ack.error()));
  return 0;
}
