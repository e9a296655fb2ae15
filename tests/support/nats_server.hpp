#pragma once

/// @file nats_server.hpp
/// Test fixture that runs a real `nats-server` process for integration tests.
///
/// Every instance owns one child process, a private temporary directory
/// (`/tmp/natsvisor-nats-XXXXXX`, holding the server log, the optional config
/// file and the JetStream store) and a fixed pair of loopback ports. The ports
/// and the store survive `kill()`/`stop()` so that `start()` brings the "same"
/// server back, which is what reconnect tests need.
///
/// The fixture is not thread-safe: drive one instance from one thread.
/// The child is started with `PR_SET_PDEATHSIG`, which Linux ties to the
/// *thread* that forked it, so create (and `start()`) the fixture on a thread
/// that outlives the server — normally the test's main thread.

#include <chrono>
#include <functional>
#include <string>
#include <sys/types.h>

namespace natsvisor::testing {

/// Knobs for the server command line.
struct server_options {
  /// Enable JetStream (`-js -sd <temp store dir>`).
  bool jetstream = true;
  /// 0 keeps the server default (1 MiB); otherwise a config file containing
  /// `max_payload: N` is written into the temp dir and passed with `-c`.
  int max_payload = 0;
  /// Lines appended to the server's config file (written and passed with `-c` when non-empty):
  /// `tls { ... }`, `authorization { ... }`, `cluster { ... }`, ... Ports and the store dir stay
  /// on the command line, which takes precedence over the file.
  std::string extra_config;
  /// Readiness is proven by a CONNECT/PING/PONG round trip, which a server that requires TLS or
  /// credentials refuses; set false for such servers: readiness is then a TCP accept on the
  /// client port plus an answer from the monitoring port.
  bool protocol_probe = true;
};

/// Owns one `/usr/sbin/nats-server` child process listening on 127.0.0.1.
class nats_server {
 public:
  /// Picks free loopback ports (client + monitoring), creates the temp dir and
  /// starts the server. Returns only once the server completes a
  /// CONNECT/PING/PONG handshake on the client port and answers `/connz` on
  /// the monitoring port. Throws `std::runtime_error` (with the tail of the
  /// server log) if that does not happen within 10 s.
  explicit nats_server(server_options opts = {});

  /// SIGKILLs the server if it is still running, reaps it and removes the
  /// temp dir recursively. Never throws.
  ~nats_server();

  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  /// SIGKILL + waitpid. When this returns the listening sockets are gone and
  /// connecting to `port()` is refused. No-op if not running.
  void kill();

  /// Starts the server again on the same client/monitoring ports with the same
  /// store dir and waits for it like the constructor does. Throws
  /// `std::runtime_error` if a port is taken or the server does not come up,
  /// `std::logic_error` if the server is already running.
  void start();

  /// Graceful shutdown: SIGTERM, then waits up to 10 s for the process to exit
  /// before falling back to SIGKILL. No-op if not running.
  void stop();

  /// SIGSTOP: a hung server. The kernel still accepts TCP connections on its ports (the
  /// handshake needs no process), but the server reads, answers and pings nothing. No-op if not
  /// running. kill() and the destructor end a paused server; stop() resumes it first.
  /// Returns once every thread of the server has stopped (see stop_process).
  void pause();

  /// SIGCONT: the paused server carries on where it stopped. No-op if not running.
  void resume();

  /// True while the child process exists and has not exited (does not reap).
  bool running() const;

  /// Client port on 127.0.0.1.
  int port() const;

  /// The server's process id while running (-1 otherwise), e.g. to send it SIGUSR2 (lame duck).
  pid_t pid() const { return pid_; }

  /// HTTP monitoring port on 127.0.0.1.
  int monitor_port() const;

  /// `"nats://127.0.0.1:<port>"`.
  std::string url() const;

  /// Number of client connections according to `GET /connz` on the monitoring
  /// port (raw POSIX socket, 2 s I/O timeout). Returns -1 if the server cannot
  /// be reached or the answer cannot be parsed.
  int connection_count() const;

  /// JetStream store directory (exists even when JetStream is disabled).
  std::string store_dir() const;

  /// Path of the file that receives the server's stdout/stderr.
  std::string log_file() const;
  /// The last 4 KiB of that file, for a failure message.
  std::string log_tail() const;

  /// Binds 127.0.0.1:0, reads the port the kernel chose and closes the socket.
  /// Another process may grab the port before it is used; tests accept that.
  static int free_port();

 private:
  void wait_until_ready();

  server_options opts_;
  int port_ = 0;
  int monitor_port_ = 0;
  std::string temp_dir_;
  std::string store_dir_;
  std::string log_path_;
  std::string config_path_;
  pid_t pid_ = -1;
};

/// Polls `pred` every 5 ms until it returns true or `deadline` has passed;
/// returns the last result (so a final evaluation happens at the deadline).
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds deadline = std::chrono::seconds(10));

/// SIGSTOP to `pid`, then waits (up to 5 s) until every thread of it is stopped. kill() only
/// queues the stop: a thread running on another core goes on until it next enters the kernel,
/// long enough under load to read and answer what a test sends right after. False if the
/// process did not stop in time (or does not exist).
bool stop_process(pid_t pid);

} // namespace natsvisor::testing
