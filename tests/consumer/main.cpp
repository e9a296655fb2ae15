// Builds against the installed headers (include/natsvisor/<dir>/...) and library; needs no
// server: it checks that configuration, URL redaction and the error category work from outside.
#include <cstdio>

#include "api/connection_service.hpp"
#include "config/settings.hpp"
#include "config/url.hpp"

int main() {
  caf::settings group;
  group["connection_pool_size"] = caf::config_value{std::string{"0"}};
  auto bad = natsvisor::parse_settings(group, nullptr);
  if (bad || natsvisor::code_of(bad.error()) != natsvisor::errc::invalid_config) {
    std::puts("expected invalid_config");
    return 1;
  }
  if (natsvisor::redact("nats://u:p@h:1") != "nats://***@h:1") {
    std::puts("redaction failed");
    return 1;
  }
  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  auto s = natsvisor::parse_settings(caf::settings{}, nullptr);
  if (!s)
    return 1;
  natsvisor::connection_service svc{sys, *s};
  auto h = svc.get_connection("not a url");
  if (h || natsvisor::code_of(h.error()) != natsvisor::errc::invalid_url) {
    std::puts("expected invalid_url");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}
