#pragma once

/// @file nats_cluster.hpp
/// Test fixture: a JetStream cluster of real nats-server processes on 127.0.0.1, one
/// `nats_server` per node (own client, monitoring and route ports, own store, `server_name`
/// "n<i>"), each killable, restartable, pausable and sent into lame duck mode on its own.
///
/// Routes are not advertised to clients (`no_advertise`): a client's server list is exactly the
/// URL it was given, so a test decides which nodes a connection may use.
/// Lame duck mode lasts 30 s (the server's minimum), of which 10 s grace before the server
/// starts closing its clients. Like nats_server, drive it from the test's main thread.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nats_server.hpp"

namespace natsvisor::testing {

class nats_cluster {
 public:
  /// Starts `nodes` servers and waits (with a deadline, throwing std::runtime_error) until the
  /// cluster is formed: every node routes to every other and knows the JetStream meta leader.
  explicit nats_cluster(size_t nodes = 3);

  size_t size() const { return nodes_.size(); }
  nats_server& node(size_t i) { return *nodes_.at(i); }

  /// The client URLs of all nodes, comma-separated (natsvisor and nats.c take such a list).
  std::string url() const;

  /// "n<i>": the node's server_name, as JetStream names leaders and peers.
  static std::string name(size_t i) { return "n" + std::to_string(i); }

  /// The index of a server name, or nothing.
  std::optional<size_t> index_of(const std::string& server_name) const;

  void kill(size_t i) { node(i).kill(); }
  /// Starts node i again (same ports and store); waits only for its client port. Follow it with
  /// wait_formed() to wait until it rejoined.
  void start(size_t i) { node(i).start(); }
  /// SIGSTOP / SIGCONT: a hung node, whose sockets stay open.
  void pause(size_t i);
  void resume(size_t i);
  /// SIGUSR2: lame duck mode (the node stops accepting clients, tells its clients, closes them
  /// after the grace period and exits about 30 s later).
  void lame_duck(size_t i);
  pid_t pid(size_t i) const { return nodes_.at(i)->pid(); }

  /// Waits until every running node routes to every other running node and all of them name
  /// the same JetStream meta leader. False at the deadline.
  bool wait_formed(std::chrono::milliseconds deadline = std::chrono::seconds(30));

  /// The meta leader as node `i` sees it ("" if none or unreachable).
  std::string meta_leader(size_t i) const;

  /// The node whose /connz lists an open client connection named `client_name` exactly.
  std::optional<size_t> node_of_client(const std::string& client_name) const;

  /// Open client connections of node i whose name starts with `prefix` (-1: unreachable).
  int clients_named(size_t i, const std::string& prefix) const;

  /// Waits for node i's process to exit by itself (lame duck ends with an exit); reaps it.
  bool wait_exit(size_t i, std::chrono::milliseconds deadline);

 private:
  std::vector<std::unique_ptr<nats_server>> nodes_;
};

} // namespace natsvisor::testing
