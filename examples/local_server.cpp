#include "local_server.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <ftw.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/url.hpp"
#include "example_support.hpp"

namespace natsvisor_examples {

using namespace std::chrono_literals;

local_server::local_server(int port, const std::string& prefix) : port_(port) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error(std::string{"mkdtemp: "} + std::strerror(errno));
  dir_ = tmpl;
  log_ = dir_ + "/nats-server.log";
}

local_server::~local_server() {
  kill();
  nftw(
    dir_.c_str(), [](const char* path, const struct stat*, int, FTW*) { return remove(path); }, 16,
    FTW_DEPTH | FTW_PHYS);
}

bool local_server::start(std::chrono::milliseconds deadline) {
  std::vector<std::string> args{binary, "-a",  "127.0.0.1",        "-p", std::to_string(port_),
                                "-js",  "-sd", dir_ + "/jetstream"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) { // the child: async-signal-safe calls only until execv
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    for (int fd = 3; fd < 1024; ++fd) // keep nats.c's and CAF's sockets from the server
      close(fd);
    int out = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    execv(binary, argv.data());
    _exit(127);
  }
  for (auto until = std::chrono::steady_clock::now() + deadline;
       pid_ > 0 && std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(20ms)) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_)
      pid_ = -1; // exited at start
    else if (listens({"127.0.0.1", port_}, 100ms))
      return true;
  }
  say("server", "%s did not come up on 127.0.0.1:%d; the tail of %s:", binary, port_, log_.c_str());
  print_log_tail();
  kill();
  return false;
}

void local_server::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
}

void local_server::print_log_tail() const {
  std::ifstream in{log_};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  for (size_t i = lines.size() > 10 ? lines.size() - 10 : 0; i < lines.size(); ++i)
    say("server", "  %s", lines[i].c_str());
}

server_at ensure_server(const std::string& url) {
  server_at result;
  auto ep = parse_endpoint(url);
  if (!is_loopback(ep)) {
    say("server", "the examples use a server on this machine only, not %s",
        natsvisor::redact(url).c_str());
  } else if (listens(ep)) {
    say("server", "a server listens on %s:%d: using it (not ours, so never killed)",
        ep.host.c_str(), ep.port);
    result.ok = true;
  } else if (access(local_server::binary, X_OK) != 0) {
    say("server", "nothing listens on %s:%d and %s is missing (run scripts/setup)", ep.host.c_str(),
        ep.port, local_server::binary);
  } else {
    result.owned = std::make_unique<local_server>(ep.port);
    result.ok = result.owned->start();
    if (result.ok)
      say("server", "nothing listened on %s:%d: started nats-server pid %d (JetStream store in %s)",
          ep.host.c_str(), ep.port, result.owned->pid(), result.owned->dir().c_str());
  }
  return result;
}

} // namespace natsvisor_examples
