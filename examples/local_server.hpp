#pragma once

// A nats-server on this machine, owned by an example: started on a loopback port with
// JetStream and a temporary store, SIGKILLed and restarted at will (same store), removed at the
// end. Shared by natsvisor_demo and the chaos example. Loopback only: the server listens on
// 127.0.0.1, and the probe only ever connects where it is told.

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

namespace natsvisor_examples {

using namespace std::chrono_literals;
using server_clock = std::chrono::steady_clock;

// -- host:port of a NATS URL and a plain TCP probe -----------------------------------------

struct endpoint {
  std::string host;
  int port = 4222;
};

// Simple parser for nats://[user[:pass]@]host[:port]; a server list uses its first entry.
inline endpoint parse_endpoint(std::string url) {
  if (auto comma = url.find(','); comma != std::string::npos)
    url.resize(comma);
  if (auto scheme = url.find("://"); scheme != std::string::npos)
    url.erase(0, scheme + 3);
  if (auto at = url.rfind('@'); at != std::string::npos)
    url.erase(0, at + 1);
  if (auto slash = url.find('/'); slash != std::string::npos)
    url.resize(slash);
  endpoint ep;
  std::string port;
  if (!url.empty() && url.front() == '[') { // [::1]:4222
    auto close = url.find(']');
    ep.host = url.substr(1, close - 1);
    if (close != std::string::npos && close + 1 < url.size() && url[close + 1] == ':')
      port = url.substr(close + 2);
  } else if (auto colon = url.rfind(':'); colon != std::string::npos) {
    ep.host = url.substr(0, colon);
    port = url.substr(colon + 1);
  } else {
    ep.host = url;
  }
  if (!port.empty())
    ep.port = std::atoi(port.c_str());
  if (ep.host.empty())
    ep.host = "localhost";
  return ep;
}

// True if a TCP connect to host:port succeeds within `timeout` (any resolved address).
inline bool listens(const endpoint& ep, std::chrono::milliseconds timeout = 300ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res) != 0)
    return false;
  bool ok = false;
  for (auto* ai = res; ai != nullptr && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      if (poll(&pfd, 1, static_cast<int>(timeout.count())) == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

// -- a nats-server this process owns ---------------------------------------------------------

inline int remove_entry(const char* path, const struct stat*, int, FTW*) {
  return remove(path);
}

class owned_server {
 public:
  using reporter = std::function<void(const std::string&)>;
  static constexpr const char* binary = "/usr/sbin/nats-server";

  /// Lines about failures go to `report` (default: stdout); the store lives in a fresh
  /// /tmp/<prefix>-XXXXXX directory that the destructor removes.
  explicit owned_server(int port, reporter report = {},
                        const std::string& prefix = "natsvisor-demo")
    : port_(port), report_(std::move(report)) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error(std::string{"mkdtemp: "} + std::strerror(errno));
    dir_ = tmpl;
    log_ = dir_ + "/nats-server.log";
  }

  ~owned_server() {
    kill();
    nftw(dir_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  }

  owned_server(const owned_server&) = delete;
  owned_server& operator=(const owned_server&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& log_file() const { return log_; }
  pid_t pid() const { return pid_; }

  // Starts the server and waits until it listens; false (with the log's tail printed) if not.
  bool start(std::chrono::milliseconds deadline = 10s) {
    std::string port = std::to_string(port_);
    std::string store = dir_ + "/jetstream";
    std::vector<std::string> args{binary, "-a", "127.0.0.1", "-p", port, "-js", "-sd", store};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      say("fork failed: %s", std::strerror(errno));
      return false;
    }
    if (pid == 0) {
      // Child: only async-signal-safe calls until execv. Dies with the thread that started it
      // (call start() from main).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
      // Do not hand the owner's own sockets (nats.c, CAF) to the server.
      for (int fd = 3; fd < 1024; ++fd)
        close(fd);
      int out = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        close(out);
      }
      execv(binary, argv.data());
      _exit(127);
    }
    pid_ = pid;
    auto until = server_clock::now() + deadline;
    while (server_clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        say("nats-server exited at start; last lines of %s:", log_.c_str());
        print_log_tail();
        return false;
      }
      if (listens({"127.0.0.1", port_}, 100ms))
        return true;
      std::this_thread::sleep_for(20ms);
    }
    say("nats-server did not listen on port %d within %lld ms; log tail:", port_,
        static_cast<long long>(deadline.count()));
    print_log_tail();
    kill();
    return false;
  }

  // SIGKILL + reap: afterwards the port refuses connections.
  void kill() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int port() const { return port_; }

 private:
  void say(const char* fmt, ...) const __attribute__((format(printf, 2, 3))) {
    char text[1024];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    if (report_) {
      report_(text);
    } else {
      std::printf("%s\n", text);
      std::fflush(stdout);
    }
  }

  void print_log_tail() const {
    std::ifstream in{log_};
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
      lines.push_back(line);
    for (size_t i = lines.size() > 10 ? lines.size() - 10 : 0; i < lines.size(); ++i)
      std::printf("    %s\n", lines[i].c_str());
  }

  int port_;
  reporter report_;
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
};

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it), or 0.
inline int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
      && getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

} // namespace natsvisor_examples
