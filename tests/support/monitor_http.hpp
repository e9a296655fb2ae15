#pragma once

// What the server itself sees, read from nats-server's HTTP monitoring port: for tests that must
// not trust the library's own counters. A raw POSIX socket, HTTP/1.0, no JSON library: /connz
// pretty-prints flat objects, so brace matching and key lookup are enough.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

namespace natsvisor::testing {

/// One client connection of a /connz answer.
struct connz_entry {
  int cid = -1;
  std::string name;
  int subscriptions = -1;        ///< the server's "subscriptions" count
  std::string subscription_list; ///< the raw "subscriptions_list" array (with subs=1)
  bool closed = false;           ///< listed with a "stop" time (state=all)
};

/// An HTTP answer: its status code and body.
struct http_response {
  int status = 0;
  std::string body;
};

/// `GET path` on 127.0.0.1:port, or nothing when no HTTP answer came (2 s I/O timeout).
inline std::optional<http_response> http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return std::nullopt;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return std::nullopt;
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  for (size_t off = 0; off < request.size();) {
    auto n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return std::nullopt;
    off += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return std::nullopt;
    if (n == 0)
      break;
    response.append(buf, static_cast<size_t>(n));
  }
  auto sp = response.find(' ');
  auto body = response.find("\r\n\r\n");
  if (sp == std::string::npos || body == std::string::npos || response.size() < sp + 4)
    return std::nullopt;
  auto code = response.substr(sp + 1, 3);
  if (code.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return http_response{std::stoi(code), response.substr(body + 4)};
}

/// The body of `GET path` on 127.0.0.1:port when it answers 200, or nothing.
inline std::optional<std::string> monitor_get(int port, const std::string& path) {
  auto r = http_get(port, path);
  if (!r || r->status != 200)
    return std::nullopt;
  return std::move(r->body);
}

namespace detail {

inline size_t json_value_at(const std::string& obj, const std::string& key) {
  auto pos = obj.find("\"" + key + "\"");
  if (pos == std::string::npos)
    return std::string::npos;
  pos = obj.find(':', pos + key.size() + 2);
  if (pos == std::string::npos)
    return pos;
  return obj.find_first_not_of(" \t\r\n", pos + 1);
}

inline int json_int(const std::string& obj, const std::string& key) {
  auto pos = json_value_at(obj, key);
  if (pos == std::string::npos || obj[pos] < '0' || obj[pos] > '9')
    return -1;
  return std::stoi(obj.substr(pos, 12));
}

inline std::string json_string(const std::string& obj, const std::string& key) {
  auto pos = json_value_at(obj, key);
  if (pos == std::string::npos || obj[pos] != '"')
    return {};
  auto end = obj.find('"', pos + 1);
  return end == std::string::npos ? std::string{} : obj.substr(pos + 1, end - pos - 1);
}

inline std::string json_array(const std::string& obj, const std::string& key) {
  auto pos = json_value_at(obj, key);
  if (pos == std::string::npos || obj[pos] != '[')
    return {};
  auto end = obj.find(']', pos);
  return end == std::string::npos ? std::string{} : obj.substr(pos, end - pos + 1);
}

} // namespace detail

/// The entries of a /connz answer's "connections" array.
inline std::vector<connz_entry> parse_connz(const std::string& body) {
  std::vector<connz_entry> out;
  auto pos = body.find("\"connections\"");
  if (pos == std::string::npos)
    return out;
  pos = body.find('[', pos);
  int depth = 0;
  size_t start = 0;
  for (size_t i = pos + 1; pos != std::string::npos && i < body.size(); ++i) {
    if (body[i] == '{' && depth++ == 0) {
      start = i;
    } else if (body[i] == '}' && --depth == 0) {
      auto obj = body.substr(start, i - start + 1);
      connz_entry e;
      e.cid = detail::json_int(obj, "cid");
      e.name = detail::json_string(obj, "name");
      e.subscriptions = detail::json_int(obj, "subscriptions");
      e.subscription_list = detail::json_array(obj, "subscriptions_list");
      e.closed = obj.find("\"stop\"") != std::string::npos;
      out.push_back(std::move(e));
    } else if (body[i] == ']' && depth == 0) {
      break;
    }
  }
  return out;
}

/// The server's client connections with their subscriptions; `all` includes closed ones (the
/// server remembers them), so a connection that came and went between two looks still counts.
/// The fixture's own readiness probe is left out.
inline std::optional<std::vector<connz_entry>> connz(int monitor_port, bool all = false) {
  auto body = monitor_get(monitor_port,
                          std::string{"/connz?subs=1&limit=4096"} + (all ? "&state=all" : ""));
  if (!body)
    return std::nullopt;
  auto entries = parse_connz(*body);
  std::vector<connz_entry> out;
  for (auto& e : entries)
    if (e.name != "natsvisor-fixture-probe")
      out.push_back(std::move(e));
  return out;
}

} // namespace natsvisor::testing
