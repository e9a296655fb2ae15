#include "config/redact.hpp"

namespace natsvisor {

std::string redact(const std::string& url) {
  auto at = url.rfind('@');
  if (at == std::string::npos)
    return url;
  std::string scheme;
  for (const char* known : {"nats://", "tls://", "ws://", "wss://"})
    if (url.compare(0, std::char_traits<char>::length(known), known) == 0)
      scheme = known;
  // The scheme ends before the '@': "nats://@h" keeps it, "nats:@x//" has none.
  if (scheme.size() > at)
    scheme.clear();
  return scheme + "***" + url.substr(at);
}

} // namespace natsvisor
