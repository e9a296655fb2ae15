#pragma once

// A loopback TCP proxy that drains slowly: it forwards each client connection to a real
// nats-server on 127.0.0.1, client to server at a fixed byte rate, server to client as fast as
// it comes. A nats.c connection through it drains as slowly as a congested link, with nothing of
// NATS mocked. Also: the resident memory of this process, sampled in the background.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "process_stats.hpp"

namespace natsvisor::testing {

class throttle_proxy {
 public:
  /// Listens on 127.0.0.1 (a free port); forwards to 127.0.0.1:`upstream_port`.
  throttle_proxy(int upstream_port, uint64_t bytes_per_second);
  /// Closes every connection (a nats.c write blocked on it fails) and joins every thread.
  ~throttle_proxy();
  throttle_proxy(const throttle_proxy&) = delete;
  throttle_proxy& operator=(const throttle_proxy&) = delete;

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  /// Bytes forwarded from clients to the server so far.
  uint64_t forwarded() const { return forwarded_.load(); }

 private:
  void accept_loop();
  void pump(int from, int to, bool throttled);

  int upstream_port_;
  uint64_t rate_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> forwarded_{0};
  std::mutex mtx_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

/// Samples VmRSS every few milliseconds until destroyed; `peak_kb()` is the highest seen.
class rss_sampler {
 public:
  rss_sampler();
  ~rss_sampler();
  long peak_kb() const { return peak_.load(); }

 private:
  std::atomic<long> peak_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace natsvisor::testing
