// The loopback side of local_server.hpp: where a URL points, whether something listens there,
// and a free port.

#include "local_server.hpp"

#include <cerrno>
#include <cstdlib>

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace natsvisor_examples {

endpoint parse_endpoint(std::string url) {
  url = url.substr(0, url.find(','));
  if (auto scheme = url.find("://"); scheme != std::string::npos)
    url.erase(0, scheme + 3);
  if (auto at = url.rfind('@'); at != std::string::npos)
    url.erase(0, at + 1);
  endpoint ep;
  if (auto colon = url.rfind(':');
      colon != std::string::npos && url.find(']', colon) == std::string::npos) { // [::1]:4222
    ep.port = std::atoi(url.c_str() + colon + 1);
    url.resize(colon);
  }
  bool bracketed = url.size() >= 2 && url.front() == '[' && url.back() == ']';
  ep.host = bracketed ? url.substr(1, url.size() - 2) : url;
  return ep;
}

bool is_loopback(const endpoint& ep) {
  return ep.host == "localhost" || ep.host == "127.0.0.1" || ep.host == "::1";
}

bool listens(const endpoint& ep, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (!is_loopback(ep)
      || getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res) != 0)
    return false;
  bool ok = false;
  for (auto* ai = res; ai != nullptr && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    pollfd pfd{fd, POLLOUT, 0};
    int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS && poll(&pfd, 1, static_cast<int>(timeout.count())) == 1) {
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    ok = err == 0;
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
      && getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

} // namespace natsvisor_examples
