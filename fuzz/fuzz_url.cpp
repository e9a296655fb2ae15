// URL parsing and redaction: a URL (or server list) is generated from the input with a secret
// marker in credential positions of arbitrary shapes (user, password, token; with ',', '@',
// "://" inside them; with or without a scheme; among entries without credentials). No byte of
// the marker may appear in redact's output or in parse_servers' error text; a URL that parses
// yields servers that are each valid on their own.

#include <string>
#include <vector>

#include "config/url.hpp"
#include "fuzz_common.hpp"
#include "messages/errors.hpp"

using namespace natsvisor;
using namespace natsvisor::fuzz;

namespace {

std::string random_entry(FuzzedDataProvider& in) {
  static const char* schemes[] = {"", "nats://", "tls://", "ws://", "NATS://", "nats:/"};
  std::string entry;
  if (in.ConsumeBool())
    entry += schemes[in.ConsumeIntegralInRange<size_t>(0, 5)];
  else
    entry += random_text(in, 8) + "://";
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0: break; // no credentials
    case 1: entry += random_secret(in) + "@"; break;                           // token
    case 2: entry += random_secret(in) + ":" + random_text(in, 8) + "@"; break; // user
    case 3: entry += random_text(in, 8) + ":" + random_secret(in) + "@"; break; // password
    case 4: entry += random_secret(in) + ":" + random_secret(in) + "@"; break;
  }
  entry += in.ConsumeBool() ? random_text(in, 16) : std::string{"h.example"};
  if (in.ConsumeBool())
    entry += ":" + std::to_string(in.ConsumeIntegralInRange(0, 70000));
  return entry;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in{data, size};
  std::string url;
  auto entries = in.ConsumeIntegralInRange(1, 4);
  for (int i = 0; i < entries; ++i) {
    if (i > 0)
      url += in.ConsumeBool() ? std::string{","} : random_text(in, 3);
    url += random_entry(in);
  }
  url += random_text(in, 4);
  auto redacted = redact(url);
  if (leaks(redacted))
    fail("redact() left secret bytes", redacted);
  auto servers = parse_servers(url);
  if (!servers) {
    auto text = describe(servers.error());
    if (leaks(text))
      fail("parse_servers' error shows secret bytes", text);
  } else {
    for (auto& server : *servers)
      if (!parse_servers(server))
        fail("a server of a parsed list does not parse alone", server);
  }
  // The plain input as a URL too: parsing and redaction must not crash on any text.
  std::string raw(reinterpret_cast<const char*>(data), size);
  (void) redact(raw);
  (void) parse_servers(raw);
  return 0;
}
