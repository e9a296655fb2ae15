#include "throttle_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace natsvisor::testing {

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

} // namespace

throttle_proxy::throttle_proxy(int upstream_port, uint64_t bytes_per_second)
  : upstream_port_(upstream_port), rate_(bytes_per_second) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A small receive buffer (inherited by accepted sockets): the client feels the slow drain soon.
  int rcvbuf = 64 * 1024;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  auto a = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
      || ::listen(listen_fd_, 16) != 0)
    throw std::runtime_error("throttle_proxy: cannot listen on 127.0.0.1");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

throttle_proxy::~throttle_proxy() {
  stop_ = true;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto fd : fds_)
      ::shutdown(fd, SHUT_RDWR);
  }
  acceptor_.join();
  for (auto& t : pumps_)
    t.join();
  for (auto fd : fds_)
    ::close(fd);
  ::close(listen_fd_);
}

void throttle_proxy::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0)
      continue;
    int server = ::socket(AF_INET, SOCK_STREAM, 0);
    auto a = loopback(upstream_port_);
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(server);
      ::close(client);
      continue;
    }
    int one = 1;
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> guard{mtx_};
    if (stop_) {
      ::close(server);
      ::close(client);
      return;
    }
    fds_.push_back(client);
    fds_.push_back(server);
    pumps_.emplace_back([this, client, server] { pump(client, server, true); });
    pumps_.emplace_back([this, client, server] { pump(server, client, false); });
  }
}

// Copies `from` to `to`; throttled: paced so that the bytes forwarded never run ahead of the
// rate (in slices of 10 ms worth of bytes).
void throttle_proxy::pump(int from, int to, bool throttled) {
  using clock = std::chrono::steady_clock;
  const size_t slice = throttled ? std::max<size_t>(1024, rate_ / 100) : 64 * 1024;
  std::vector<char> buf(slice);
  auto t0 = clock::now();
  uint64_t sent = 0;
  while (!stop_) {
    pollfd p{from, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    auto n = ::recv(from, buf.data(), buf.size(), 0);
    if (n <= 0 || !write_all(to, buf.data(), static_cast<size_t>(n)))
      break;
    if (!throttled)
      continue;
    sent += static_cast<uint64_t>(n);
    forwarded_ += static_cast<uint64_t>(n);
    auto due = t0 + std::chrono::microseconds(sent * 1000000 / rate_);
    std::this_thread::sleep_until(due); // the pacing itself, not a synchronisation
  }
  ::shutdown(from, SHUT_RDWR);
  ::shutdown(to, SHUT_RDWR);
}


rss_sampler::rss_sampler() {
  peak_ = proc_status_kb("VmRSS");
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock{mtx_};
    while (!stop_) {
      auto now = proc_status_kb("VmRSS");
      if (now > peak_)
        peak_ = now;
      cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
  });
}

rss_sampler::~rss_sampler() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

} // namespace natsvisor::testing
