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

std::string redact_one(const std::string& server) {
  auto start = server.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  // The credentials end at the last '@' before any path, so a '@' inside a password is covered.
  auto at = server.rfind('@');
  if (at == std::string::npos || at < start)
    return server;
  return server.substr(0, start) + "***" + server.substr(at);
}

// Empty when valid, otherwise what is wrong.
std::string check_server(const std::string& server) {
  auto sep = server.find("://");
  if (sep == std::string::npos)
    return "missing scheme (expected nats:// or tls://)";
  auto scheme = server.substr(0, sep);
  if (scheme != "nats" && scheme != "tls")
    return "unsupported scheme '" + scheme + "' (expected nats or tls)";
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

std::string redact(const std::string& url) {
  // Credentials are found between each "://" and the last '@' before the next "://", not by
  // splitting on ',' first: a ',' inside a password must not expose the rest of it.
  std::vector<size_t> starts;
  for (auto pos = url.find("://"); pos != std::string::npos; pos = url.find("://", pos + 3))
    starts.push_back(pos + 3);
  if (starts.empty())
    return redact_one(url);
  std::string out = url.substr(0, starts.front());
  for (size_t i = 0; i < starts.size(); ++i) {
    auto begin = starts[i];
    auto end = i + 1 < starts.size() ? starts[i + 1] - 3 : url.size();
    auto segment = url.substr(begin, end - begin);
    // The segment ends with the next server's scheme ("...,nats"): keep that out of reach.
    auto scheme_start = i + 1 < starts.size() ? segment.rfind(',') : std::string::npos;
    auto head = scheme_start == std::string::npos ? segment : segment.substr(0, scheme_start);
    auto tail = scheme_start == std::string::npos ? std::string{} : segment.substr(scheme_start);
    if (auto at = head.rfind('@'); at != std::string::npos)
      head = "***" + head.substr(at);
    out += head + tail;
    if (i + 1 < starts.size())
      out += "://";
  }
  return out;
}

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
