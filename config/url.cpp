#include "config/url.hpp"

#include <cctype>

#include "messages/errors.hpp"

namespace natsvisor {

namespace {

std::string trim(const std::string& s) {
  auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos)
    return {};
  auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string::size_type pos = 0;
  for (;;) {
    auto next = s.find(sep, pos);
    out.push_back(s.substr(pos, next - pos));
    if (next == std::string::npos)
      return out;
    pos = next + 1;
  }
}

// Empty when valid, otherwise what is wrong.
std::string check_server(const std::string& server) {
  auto sep = server.find("://");
  if (sep == std::string::npos)
    return "missing scheme (expected nats:// or tls://)";
  auto scheme = server.substr(0, sep);
  if (scheme != "nats" && scheme != "tls")
    return "unsupported scheme (expected nats:// or tls://)";
  auto rest = server.substr(sep + 3);
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    if (at == 0)
      return "empty credentials before '@'";
    rest = rest.substr(at + 1);
  }
  if (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  std::string host = rest;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos)
      return "unterminated IPv6 address";
    host = rest.substr(0, close + 1);
    auto tail = rest.substr(close + 1);
    if (!tail.empty()) {
      if (tail.front() != ':')
        return "unexpected text after the host";
      port = tail.substr(1);
      if (port.empty())
        return "empty port";
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty())
      return "empty port";
  }
  if (host.empty())
    return "missing host";
  if (host.front() != '[')
    for (unsigned char c : host)
      if (!std::isalnum(c) && c != '.' && c != '-' && c != '_')
        return "invalid character in host";
  if (!port.empty()) {
    if (port.size() > 5)
      return "port out of range";
    for (unsigned char c : port)
      if (!std::isdigit(c))
        return "port is not a number";
    auto n = std::stoi(port);
    if (n < 1 || n > 65535)
      return "port out of range";
  }
  return {};
}

} // namespace

caf::expected<std::vector<std::string>> parse_servers(const std::string& url) {
  std::vector<std::string> servers;
  if (trim(url).empty())
    return make_error(errc::invalid_url, "empty URL", redact(url));
  for (auto& part : split(url, ',')) {
    auto server = trim(part);
    if (server.empty())
      return make_error(errc::invalid_url, "empty server in list", redact(url));
    for (unsigned char c : server)
      if (std::isspace(c) || std::iscntrl(c))
        return make_error(errc::invalid_url, "white space inside a server URL", redact(url));
    if (auto problem = check_server(server); !problem.empty())
      return make_error(errc::invalid_url, problem, redact(url));
    servers.push_back(std::move(server));
  }
  return servers;
}

} // namespace natsvisor
