#include "nats_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace natsvisor::testing {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr const char* server_binary = "/usr/sbin/nats-server";
constexpr auto startup_deadline = std::chrono::seconds(10);
constexpr auto stop_deadline = std::chrono::seconds(10);
constexpr auto poll_interval = std::chrono::milliseconds(5);
/// The readiness probe identifies itself so we can wait until the server has
/// dropped it again; otherwise a test asserting connection_count() == 0 right
/// after start() would race with the probe's teardown.
constexpr const char* probe_name = "natsvisor-fixture-probe";

/// RAII for a socket descriptor.
struct fd_guard {
  int fd;
  explicit fd_guard(int f) : fd(f) {}
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
};

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

/// Blocking connect to 127.0.0.1:port with send/receive timeouts so a wedged
/// server (e.g. SIGSTOPped) cannot hang a test. Returns -1 on failure.
int connect_loopback(int port, std::chrono::milliseconds io_timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(io_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((io_timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto addr = loopback(port);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Sends everything; MSG_NOSIGNAL because the peer may already be gone and a
/// SIGPIPE would kill the whole test binary.
bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

/// Reads until EOF (HTTP/1.0 + "Connection: close"). False on error/timeout.
bool recv_all(int fd, std::string& out) {
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      return true;
    out.append(buf, static_cast<size_t>(n));
  }
}

/// GET `path` from the monitoring port. True (and `body` filled) only for a
/// complete "200" response.
bool http_get(int port, const std::string& path, std::string& body) {
  fd_guard sock{connect_loopback(port, std::chrono::seconds(2))};
  if (sock.fd < 0)
    return false;
  std::string request = "GET " + path
                        + " HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n";
  if (!send_all(sock.fd, request))
    return false;
  std::string response;
  if (!recv_all(sock.fd, response))
    return false;
  // Status line: "HTTP/1.x 200 OK".
  auto sp = response.find(' ');
  if (sp == std::string::npos || response.compare(sp + 1, 3, "200") != 0)
    return false;
  auto header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos)
    return false;
  body = response.substr(header_end + 4);
  return true;
}

/// Extracts the integer following `"key":` (whitespace tolerant, since the
/// server pretty-prints its JSON). -1 if absent or malformed.
int json_int_field(const std::string& json, const std::string& key) {
  auto pos = json.find("\"" + key + "\"");
  if (pos == std::string::npos)
    return -1;
  pos += key.size() + 2;
  while (pos < json.size() && (json[pos] == ' ' || json[pos] == '\t'))
    ++pos;
  if (pos >= json.size() || json[pos] != ':')
    return -1;
  ++pos;
  while (pos < json.size()
         && (json[pos] == ' ' || json[pos] == '\t' || json[pos] == '\n' || json[pos] == '\r'))
    ++pos;
  if (pos >= json.size() || json[pos] < '0' || json[pos] > '9')
    return -1;
  long value = 0;
  while (pos < json.size() && json[pos] >= '0' && json[pos] <= '9') {
    value = value * 10 + (json[pos] - '0');
    if (value > 1000000000)
      return -1;
    ++pos;
  }
  return static_cast<int>(value);
}

/// One NATS protocol round trip: read INFO, send CONNECT+PING, expect PONG.
/// Proves that the client listener is up *and* the server processes protocol,
/// which a bare TCP accept does not.
bool nats_handshake(int port) {
  fd_guard sock{connect_loopback(port, std::chrono::seconds(2))};
  if (sock.fd < 0)
    return false;
  std::string request = std::string("CONNECT {\"verbose\":false,\"pedantic\":"
                                    "false,\"name\":\"")
                        + probe_name + "\"}\r\nPING\r\n";
  if (!send_all(sock.fd, request))
    return false;
  std::string received;
  char buf[4096];
  while (received.find("PONG\r\n") == std::string::npos) {
    if (received.find("-ERR") != std::string::npos)
      return false;
    auto n = ::recv(sock.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    received.append(buf, static_cast<size_t>(n));
  }
  return true;
}

/// Checks whether `port` could be bound the way nats-server binds it
/// (SO_REUSEADDR, so TIME_WAIT leftovers from a killed instance don't count).
bool port_bindable(int port) {
  fd_guard sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0)
    return false;
  int one = 1;
  ::setsockopt(sock.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  auto addr = loopback(port);
  return ::bind(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

/// Non-blocking reap. True if `pid` has exited (and is now reaped).
bool try_reap(pid_t pid) {
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid, &status, WNOHANG);
  } while (rc < 0 && errno == EINTR);
  // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN); gone anyway.
  return rc == pid || (rc < 0 && errno == ECHILD);
}

void blocking_reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

} // namespace

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
  auto until = clock_type::now() + deadline;
  for (;;) {
    if (pred())
      return true;
    if (clock_type::now() >= until)
      return pred();
    std::this_thread::sleep_for(poll_interval);
  }
}

nats_server::nats_server(server_options opts) : opts_(opts) {
  char templ[] = "/tmp/natsvisor-nats-XXXXXX";
  if (::mkdtemp(templ) == nullptr)
    throw std::system_error(errno, std::generic_category(), "nats_server: mkdtemp failed");
  temp_dir_ = templ;
  // The constructor may throw below; the destructor would not run then.
  try {
    store_dir_ = temp_dir_ + "/store";
    log_path_ = temp_dir_ + "/server.log";
    std::filesystem::create_directory(store_dir_);
    if (opts_.max_payload > 0 || !opts_.extra_config.empty()) {
      config_path_ = temp_dir_ + "/server.conf";
      std::ofstream conf{config_path_};
      if (opts_.max_payload > 0)
        conf << "max_payload: " << opts_.max_payload << "\n";
      conf << opts_.extra_config << "\n";
      if (!conf)
        throw std::runtime_error("nats_server: cannot write " + config_path_);
    }
    port_ = free_port();
    // Both ports are picked before either is used, so the kernel could hand
    // out the same one twice; retry until they differ.
    do {
      monitor_port_ = free_port();
    } while (monitor_port_ == port_);
    start();
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
    throw;
  }
}

nats_server::~nats_server() {
  kill();
  std::error_code ec;
  std::filesystem::remove_all(temp_dir_, ec);
}

void nats_server::kill() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  // After the reap the kernel has closed the listening sockets, so the port
  // refuses connections from here on.
  blocking_reap(pid_);
  pid_ = -1;
}

bool stop_process(pid_t pid) {
  if (pid <= 0 || ::kill(pid, SIGSTOP) != 0)
    return false;
  // Field 3 of /proc/<pid>/task/<tid>/stat is the thread's state: 'T' once it stopped.
  auto all_stopped = [pid] {
    std::error_code ec;
    auto dir = "/proc/" + std::to_string(pid) + "/task";
    for (auto& task : std::filesystem::directory_iterator(dir, ec)) {
      std::ifstream in(task.path() / "stat");
      std::string line;
      if (!std::getline(in, line))
        continue; // the thread ended meanwhile
      auto paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size())
        return false;
      auto state = line[paren + 2];
      if (state != 'T' && state != 't')
        return false;
    }
    return !ec;
  };
  auto until = clock_type::now() + std::chrono::seconds(5);
  while (!all_stopped()) {
    if (clock_type::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void nats_server::pause() {
  if (pid_ > 0 && !stop_process(pid_))
    throw std::runtime_error("nats-server " + std::to_string(pid_) + " did not stop");
}

void nats_server::resume() {
  if (pid_ > 0)
    ::kill(pid_, SIGCONT);
}

void nats_server::stop() {
  if (pid_ <= 0)
    return;
  // A paused server would not act on SIGTERM before SIGCONT.
  resume();
  ::kill(pid_, SIGTERM);
  auto until = clock_type::now() + stop_deadline;
  while (!try_reap(pid_)) {
    if (clock_type::now() >= until) {
      ::kill(pid_, SIGKILL);
      blocking_reap(pid_);
      break;
    }
    std::this_thread::sleep_for(poll_interval);
  }
  pid_ = -1;
}

bool nats_server::running() const {
  if (pid_ <= 0)
    return false;
  // WNOWAIT peeks without reaping, which keeps this const and leaves the
  // bookkeeping to kill()/stop().
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0)
    return false;
  return info.si_pid == 0;
}

void nats_server::start() {
  if (running())
    throw std::logic_error("nats_server::start: server already running on port "
                           + std::to_string(port_));
  if (pid_ > 0) {
    // Exited on its own; reap the zombie before replacing it.
    blocking_reap(pid_);
    pid_ = -1;
  }
  if (!port_bindable(port_))
    throw std::runtime_error("nats_server::start: client port " + std::to_string(port_)
                             + " is already in use by another process");
  if (!port_bindable(monitor_port_))
    throw std::runtime_error("nats_server::start: monitoring port " + std::to_string(monitor_port_)
                             + " is already in use by another process");
  {
    // Mark the restart in the log so log_tail() shows which run failed.
    std::ofstream log{log_path_, std::ios::app};
    log << "---- natsvisor fixture: starting nats-server ----\n";
  }

  // Everything the child needs is prepared before fork(): the test binary is
  // multi-threaded (nats.c, CAF), so the child may only call
  // async-signal-safe functions until execv.
  std::vector<std::string> args{server_binary,
                                "-a",
                                "127.0.0.1",
                                "-p",
                                std::to_string(port_),
                                "-m",
                                std::to_string(monitor_port_)};
  if (opts_.jetstream) {
    args.insert(args.end(), {"-js", "-sd", store_dir_});
  }
  if (!config_path_.empty()) {
    args.insert(args.end(), {"-c", config_path_});
  }
  std::vector<char*> argv;
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  const char* log_path = log_path_.c_str();
  const pid_t parent = ::getpid();
  rlimit nofile{};
  int max_fd = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
    max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 65536));

  pid_t pid = ::fork();
  if (pid < 0)
    throw std::system_error(errno, std::generic_category(), "nats_server::start: fork failed");
  if (pid == 0) {
    // Child. Die with the forking thread so a crashing test never orphans the
    // server; re-check the parent to close the race with an already-dead one.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    // Signal masks and ignored dispositions survive execv; make sure SIGTERM
    // from stop() is actually delivered.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT})
      ::signal(sig, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDONLY);
    int log_fd = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (devnull < 0 || log_fd < 0)
      ::_exit(126);
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // Don't leak the test's sockets (nats.c connections, other servers'
    // probes) into the server: a leaked client fd would keep connections
    // alive after the test closes them.
    if (::close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < max_fd; ++fd)
        ::close(fd);
    }
    ::execv(server_binary, argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  try {
    wait_until_ready();
  } catch (...) {
    kill();
    throw;
  }
}

void nats_server::wait_until_ready() {
  auto until = clock_type::now() + startup_deadline;
  auto fail = [&](const std::string& why) {
    throw std::runtime_error("nats_server: " + why + " (client port " + std::to_string(port_)
                             + ", monitoring port " + std::to_string(monitor_port_)
                             + "); server log tail:\n" + log_tail());
  };
  auto poll = [&](auto&& ready, const char* what) {
    for (;;) {
      if (try_reap(pid_)) {
        pid_ = -1;
        fail(std::string("nats-server exited while waiting for ") + what);
      }
      if (ready())
        return;
      if (clock_type::now() >= until)
        fail(std::string("timed out after 10 s waiting for ") + what);
      std::this_thread::sleep_for(poll_interval);
    }
  };
  // nats-server opens the client listener last (after monitoring and
  // JetStream), so a successful handshake implies everything else is up.
  if (!opts_.protocol_probe) {
    // A TLS or auth server refuses the plain handshake; an accept proves the listener is up.
    poll([&] { return fd_guard{connect_loopback(port_, std::chrono::seconds(2))}.fd >= 0; },
         "the client port");
    poll([&] { return connection_count() >= 0; }, "the monitoring port");
    return;
  }
  poll([&] { return nats_handshake(port_); }, "the client port");
  poll([&] { return connection_count() >= 0; }, "the monitoring port");
  // The probe connection is torn down asynchronously by the server; wait
  // until /connz no longer lists it so callers start from a clean count.
  poll(
    [&] {
      std::string body;
      return http_get(monitor_port_, "/connz", body) && body.find(probe_name) == std::string::npos;
    },
    "the readiness probe connection to disappear from /connz");
}

std::string nats_server::log_tail() const {
  constexpr std::streamoff max_tail = 4096;
  std::ifstream in{log_path_, std::ios::binary};
  if (!in)
    return "<no log file>";
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(in.tellg());
  auto from = size > max_tail ? size - max_tail : 0;
  in.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  return tail;
}

int nats_server::port() const {
  return port_;
}

int nats_server::monitor_port() const {
  return monitor_port_;
}

std::string nats_server::url() const {
  return "nats://127.0.0.1:" + std::to_string(port_);
}

int nats_server::connection_count() const {
  std::string body;
  if (!http_get(monitor_port_, "/connz", body))
    return -1;
  return json_int_field(body, "num_connections");
}

std::string nats_server::store_dir() const {
  return store_dir_;
}

std::string nats_server::log_file() const {
  return log_path_;
}

int nats_server::free_port() {
  fd_guard sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0)
    throw std::system_error(errno, std::generic_category(),
                            "nats_server::free_port: socket failed");
  auto addr = loopback(0);
  if (::bind(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::system_error(errno, std::generic_category(), "nats_server::free_port: bind failed");
  socklen_t len = sizeof(addr);
  if (::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::system_error(errno, std::generic_category(),
                            "nats_server::free_port: getsockname failed");
  return ntohs(addr.sin_port);
}

} // namespace natsvisor::testing
