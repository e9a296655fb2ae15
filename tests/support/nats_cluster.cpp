#include "nats_cluster.hpp"

#include <signal.h>

#include <algorithm>
#include <stdexcept>

#include "monitor_http.hpp"

namespace natsvisor::testing {

namespace {

std::string node_config(size_t i, const std::vector<int>& route_ports) {
  std::string routes;
  for (auto p : route_ports)
    routes += (routes.empty() ? "" : ", ") + std::string{"nats-route://127.0.0.1:"}
              + std::to_string(p);
  // A route to itself is recognised and dropped by the server, so every node gets the same list.
  return "server_name: " + nats_cluster::name(i) + "\n"
         + "cluster {\n  name: natsvisor-test\n  listen: 127.0.0.1:"
         + std::to_string(route_ports[i]) + "\n  no_advertise: true\n  routes: [" + routes
         + "]\n}\n"
         + "lame_duck_duration: 30s\nlame_duck_grace_period: 10s\n";
}

int num_routes(int monitor_port) {
  auto body = monitor_get(monitor_port, "/routez");
  return body ? detail::json_int(*body, "num_routes") : -1;
}

} // namespace

nats_cluster::nats_cluster(size_t nodes) : paused_(nodes, false) {
  // Ports are picked before the servers bind them, so another process (a second copy of the
  // suite) may take one in between: that node then exits ("address already in use", seen on a
  // route port). Such a start is retried on fresh ports, a few times.
  constexpr int attempts = 3;
  for (int attempt = 1;; ++attempt) {
    nodes_.clear();
    try {
      std::vector<int> route_ports;
      while (route_ports.size() < nodes) {
        // Distinct ports: the kernel may hand out the same free port twice before any is bound.
        auto p = nats_server::free_port();
        if (std::find(route_ports.begin(), route_ports.end(), p) == route_ports.end())
          route_ports.push_back(p);
      }
      for (size_t i = 0; i < nodes; ++i) {
        server_options opts;
        opts.extra_config = node_config(i, route_ports);
        nodes_.push_back(std::make_unique<nats_server>(opts));
      }
    } catch (const std::runtime_error&) {
      if (attempt == attempts)
        throw;
      continue;
    }
    // The running nodes may form without one that exited, so both are checked.
    auto formed = wait_formed();
    auto exited = std::find_if(nodes_.begin(), nodes_.end(), [](auto& n) { return !n->running(); });
    if (formed && exited == nodes_.end())
      return;
    if (exited == nodes_.end() || attempt == attempts)
      throw std::runtime_error(exited == nodes_.end()
                                 ? std::string{"nats_cluster: the cluster did not form within 30 s"}
                                 : "nats_cluster: a node exited while the cluster formed, "
                                   + std::to_string(attempts) + " times; the last one's log:\n"
                                   + (*exited)->log_tail());
  }
}

std::string nats_cluster::url() const {
  std::string out;
  for (auto& n : nodes_)
    out += (out.empty() ? "" : ",") + n->url();
  return out;
}

std::optional<size_t> nats_cluster::index_of(const std::string& server_name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (name(i) == server_name)
      return i;
  return std::nullopt;
}

void nats_cluster::pause(size_t i) {
  ::kill(pid(i), SIGSTOP);
  paused_.at(i) = true;
}

void nats_cluster::resume(size_t i) {
  ::kill(pid(i), SIGCONT);
  paused_.at(i) = false;
}

void nats_cluster::lame_duck(size_t i) {
  ::kill(pid(i), SIGUSR2);
}

std::string nats_cluster::meta_leader(size_t i) const {
  auto body = monitor_get(nodes_.at(i)->monitor_port(), "/jsz");
  if (!body)
    return {};
  auto meta = body->find("\"meta_cluster\"");
  return meta == std::string::npos ? std::string{} : detail::json_string(body->substr(meta), "leader");
}

bool nats_cluster::wait_formed(std::chrono::milliseconds deadline) {
  return eventually(
    [this] {
      std::vector<size_t> up;
      for (size_t i = 0; i < nodes_.size(); ++i)
        if (this->up(i))
          up.push_back(i);
      std::string leader;
      for (auto i : up) {
        if (num_routes(nodes_[i]->monitor_port()) < static_cast<int>(up.size()) - 1)
          return false;
        auto l = meta_leader(i);
        auto li = index_of(l);
        if (!li || !this->up(*li) || (!leader.empty() && l != leader))
          return false;
        leader = l;
      }
      return !up.empty();
    },
    deadline);
}

std::optional<size_t> nats_cluster::node_of_client(const std::string& client_name) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!up(i))
      continue;
    if (auto conns = connz(nodes_[i]->monitor_port()))
      for (auto& c : *conns)
        if (c.name == client_name)
          return i;
  }
  return std::nullopt;
}

int nats_cluster::clients_named(size_t i, const std::string& prefix) const {
  auto conns = connz(nodes_.at(i)->monitor_port());
  if (!conns)
    return -1;
  int n = 0;
  for (auto& c : *conns)
    n += c.name.rfind(prefix, 0) == 0;
  return n;
}

bool nats_cluster::wait_exit(size_t i, std::chrono::milliseconds deadline) {
  return eventually([&] { return !nodes_.at(i)->running(); }, deadline);
}

} // namespace natsvisor::testing
