// Configuration text: natsvisor's keys parsed from a config file (CAF's parser, no actor system)
// and validated by parse_settings. A secret key (password, token, creds_file) with a marked
// value of arbitrary type (string, number, list, ...) amid random text: neither CAF's parse error
// nor natsvisor's validation error may show any byte of it.

#include <algorithm>
#include <sstream>
#include <string>

#include "api/config.hpp"
#include "fuzz_common.hpp"
#include "messages/errors.hpp"

using namespace natsvisor;
using namespace natsvisor::fuzz;

namespace {

env_lookup no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };

// A value of some config type that holds the marker. For a secret key anything it holds is
// secret; for a URL key (nats_url, urls) only its credentials are, so the marker sits in one.
std::string secret_value(FuzzedDataProvider& in, bool url_key) {
  if (url_key) {
    // Inside one quoted string: a '"', '\\' or line break would end it before the '@'.
    auto text = [&](std::string s) {
      s.erase(std::remove_if(s.begin(), s.end(),
                             [](char c) { return c == '"' || c == '\\' || c == '\n' || c == '\r'; }),
              s.end());
      return s;
    };
    auto url = "\"nats://" + text(random_text(in, 8)) + ":" + text(random_secret(in)) + "@h:1\"";
    switch (in.ConsumeIntegralInRange(0, 2)) {
      case 0: return url;
      case 1: return "[" + url + ", 1]";
      default: return "{ a = " + url + " }";
    }
  }
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0: return "\"" + random_secret(in) + "\"";
    case 1: return "[\"" + random_secret(in) + "\", 1]";
    case 2: return "{ a = \"" + random_secret(in) + "\" }";
    default: return random_secret(in);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in{data, size};
  static const char* keys[] = {"password", "token", "creds_file", "nats_url", "urls"};
  auto index = in.ConsumeIntegralInRange(0, 4);
  auto key = keys[index];
  std::string text = random_text(in, 64) + "\nnatsvisor {\n  user = \"u\"\n  " + key + " = "
                     + secret_value(in, index >= 3) + "\n" + random_text(in, 64) + "\n}\n"
                     + random_text(in, 64);
  std::istringstream is{text};
  natsvisor::config cfg;
  if (auto err = cfg.parse(caf::actor_system_config::string_list{}, is)) {
    auto shown = caf::to_string(err);
    if (leaks(shown))
      fail("CAF's parse error shows secret bytes", shown);
    return 0;
  }
  auto s = parse_settings(cfg, no_env);
  if (!s && leaks(describe(s.error())))
    fail("parse_settings' error shows secret bytes", describe(s.error()));
  return 0;
}
