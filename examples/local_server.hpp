#pragma once

// The one nats-server helper of the examples: a server on this machine that an example owns
// (started on 127.0.0.1 with JetStream and a temporary store, SIGKILLed and restarted at will
// with the same store, removed at the end), and a plain TCP probe. Loopback only: the server
// listens on 127.0.0.1, and nothing here connects anywhere else.

#include <chrono>
#include <memory>
#include <string>

#include <sys/types.h>

namespace natsvisor_examples {

/// Host and port of a NATS URL's first server: nats://[user[:pass]@]host[:port][,...].
struct endpoint {
  std::string host;
  int port = 4222;
};

endpoint parse_endpoint(std::string url);

/// localhost, 127.0.0.1 or ::1: the only hosts the examples talk to.
bool is_loopback(const endpoint& ep);

/// True if a TCP connect to the endpoint succeeds within `timeout`.
bool listens(const endpoint& ep,
             std::chrono::milliseconds timeout = std::chrono::milliseconds{300});

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it), or 0.
int free_loopback_port();

/// A nats-server this process owns. The child dies with the thread that started it
/// (PR_SET_PDEATHSIG: call start() from main), so a crashed example leaves no server behind.
class local_server {
 public:
  static constexpr const char* binary = "/usr/sbin/nats-server";

  /// Creates the store directory /tmp/<prefix>-XXXXXX (throws std::runtime_error on failure);
  /// the server is not started yet.
  explicit local_server(int port, const std::string& prefix = "natsvisor-example");
  /// Kills the server and removes its directory.
  ~local_server();
  local_server(const local_server&) = delete;
  local_server& operator=(const local_server&) = delete;

  /// Starts the server and waits until it listens; false (with its log's tail printed) if not.
  bool start(std::chrono::milliseconds deadline = std::chrono::seconds{10});
  /// SIGKILL and reap: afterwards the port refuses connections.
  void kill();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  void print_log_tail() const;

  int port_;
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
};

/// The server an example talks to at `url` (which must be on this machine): the one already
/// listening there (`owned` stays empty), else a local_server started on the URL's port.
/// Failures are printed; `ok` tells whether a server listens now.
struct server_at {
  bool ok = false;
  std::unique_ptr<local_server> owned;
};

server_at ensure_server(const std::string& url);

} // namespace natsvisor_examples
