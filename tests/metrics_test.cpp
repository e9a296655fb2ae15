#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "monitor_http.hpp"
#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/metrics.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

std::string make_temp_dir(const char* prefix) {
  std::string tmpl = std::string{"/tmp/"} + prefix + "-XXXXXX";
  if (!::mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string read_all(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct lint_result {
  int exit_status = -1;
  std::string output; // promtool's complaints, if any
};

// `promtool check metrics` reads the exposition on stdin; exit 0 and silence mean it found no
// syntax error and no lint problem (it exits 3 for lint problems, 1 for errors).
lint_result promtool_check(const std::string& text) {
  auto dir = make_temp_dir("natsvisor-promtool");
  auto file = dir + "/metrics.txt";
  std::ofstream{file} << text;
  lint_result r;
  auto cmd = "/usr/bin/promtool check metrics < " + file + " 2>&1";
  if (auto pipe = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (auto n = std::fread(buf, 1, sizeof(buf), pipe))
      r.output.append(buf, n);
    auto status = ::pclose(pipe);
    r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::filesystem::remove_all(dir);
  return r;
}

/// A real Prometheus server on 127.0.0.1 scraping one target every second; SIGKILLed (and its
/// store removed) on destruction. Like nats_server, the child dies with the creating thread.
class prometheus_process {
 public:
  explicit prometheus_process(int target_port) : dir_(make_temp_dir("natsvisor-prom")) {
    port_ = nats_server::free_port();
    auto config = dir_ + "/prometheus.yml";
    std::ofstream{config} << "global:\n"
                          << "  scrape_interval: 1s\n"
                          << "  scrape_timeout: 1s\n"
                          << "scrape_configs:\n"
                          << "  - job_name: natsvisor\n"
                          << "    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << target_port << "']\n";
    std::vector<std::string> args{"/usr/bin/prometheus", "--config.file=" + config,
                                  "--storage.tsdb.path=" + dir_ + "/data",
                                  "--web.listen-address=127.0.0.1:" + std::to_string(port_)};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    auto log = dir_ + "/prometheus.log";
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out < 0)
        ::_exit(126);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      ::close_range(3, ~0U, 0); // keep the test's sockets out of the child
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }

  ~prometheus_process() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int port() const { return port_; }
  std::string log() const { return read_all(dir_ + "/prometheus.log"); }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

url_status sample_status(const std::string& url, connection_state state) {
  url_status s;
  s.url = url;
  s.state = state;
  s.generation = 2;
  s.restarts = 1;
  s.out_msgs = 7;
  s.pool.size = 3;
  s.pool.leaks = 1;
  return s;
}

} // namespace

TEST_CASE("metrics text escapes label values and declares each family once", "[metrics]") {
  CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(escape_label_value("nats://***@host:4222") == "nats://***@host:4222");

  status_report report{sample_status("nats://h:1", connection_state::connected),
                       sample_status("weird\\\"\nurl", connection_state::gave_up)};
  auto text = to_prometheus(report, "my \"app\"");
  CHECK_THAT(text, Catch::Contains("natsvisor_restarts_total{app=\"my \\\"app\\\"\","
                                   "url=\"weird\\\\\\\"\\nurl\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("natsvisor_connection_state{app=\"my \\\"app\\\"\","
                                   "url=\"nats://h:1\",state=\"connected\"} 1\n"));

  // Every sample belongs to the family of the TYPE line before it; HELP and TYPE once each.
  std::map<std::string, int> helps, types;
  std::string family, type;
  std::map<std::string, int> hot; // url label -> states at 1
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    if (line.rfind("# HELP ", 0) == 0) {
      ++helps[line.substr(7, line.find(' ', 7) - 7)];
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream in{line.substr(7)};
      in >> family >> type;
      ++types[family];
      CHECK(helps[family] == 1); // HELP comes first
      bool counter_name = family.size() > 6 && family.compare(family.size() - 6, 6, "_total") == 0;
      CHECK(counter_name == (type == "counter"));
    } else {
      CHECK(line.substr(0, line.find('{')) == family);
      if (family == "natsvisor_connection_state" && line.back() == '1')
        ++hot[line.substr(0, line.find(",state="))];
    }
  }
  CHECK(types.size() == 24);
  for (auto& [name, n] : helps)
    CHECK(n == 1);
  for (auto& [name, n] : types)
    CHECK(n == 1);
  CHECK(hot.size() == 2); // one state at 1 per URL
  for (auto& [url, n] : hot)
    CHECK(n == 1);

  // Prometheus' own linter agrees, with the odd label values and with no URL at all.
  auto lint = promtool_check(text);
  INFO(lint.output);
  CHECK(lint.exit_status == 0);
  CHECK(lint.output.empty());
  auto empty = promtool_check(to_prometheus({}, "app"));
  INFO(empty.output);
  CHECK(empty.exit_status == 0);
}

// The inspect of publish_status is what prints and serializes a status: it must carry every
// drop reason's count (it once stopped before `overloaded`, the last reason).
TEST_CASE("a printed status carries the count of every drop reason", "[metrics]") {
  publish_status p;
  for (size_t i = 0; i < drop_reason_count; ++i)
    p.dropped[i] = 1000 + i;
  auto text = caf::deep_to_string(p);
  for (size_t i = 0; i < drop_reason_count; ++i) {
    INFO(text << " lacks the count of " << to_string(static_cast<drop_reason>(i)));
    CHECK_THAT(text, Catch::Contains(std::to_string(1000 + i)));
  }
}

TEST_CASE("the status of a real connection passes promtool check metrics", "[metrics]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  REQUIRE(f.svc->get_connection());
  for (int i = 0; i < 3; ++i)
    REQUIRE_FALSE(f.svc->publish(outgoing{"metrics.test", "hello", {}}));
  std::optional<url_status> seen;
  REQUIRE(eventually([&] {
    seen = f.status_of(server.url());
    return seen && seen->out_msgs >= 3 && seen->state == connection_state::connected;
  }));

  auto report = f.svc->status();
  REQUIRE(report);
  auto text = to_prometheus(*report, "natsvisor_tests");
  auto labels = "{app=\"natsvisor_tests\",url=\"" + server.url() + "\"";
  CHECK_THAT(text,
             Catch::Contains("natsvisor_connection_state" + labels + ",state=\"connected\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("natsvisor_generation" + labels + "} 1\n"));
  CHECK_THAT(text, Catch::Contains("natsvisor_restarts_total" + labels + "} 0\n"));
  CHECK_THAT(text, Catch::Contains("natsvisor_pool_size" + labels + "} "));

  auto lint = promtool_check(text);
  INFO(text << "\npromtool said:\n" << lint.output);
  CHECK(lint.exit_status == 0);
  CHECK(lint.output.empty());
}

TEST_CASE("a real Prometheus server scrapes the metrics endpoint", "[metrics]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.metrics_listen = "127.0.0.1:0"; // the kernel picks a free port
  service_fixture f{s};
  REQUIRE_FALSE(f.svc->metrics_error());
  auto port = f.svc->metrics_port();
  REQUIRE(port > 0);
  REQUIRE(f.svc->get_connection());

  auto direct = http_get(port, "/metrics");
  REQUIRE(direct);
  CHECK(direct->status == 200);
  CHECK_THAT(direct->body, Catch::Contains("natsvisor_restarts_total{"));
  auto other = http_get(port, "/");
  REQUIRE(other);
  CHECK(other->status == 404);

  prometheus_process prom{port};
  auto query = [&](const std::string& q) {
    return monitor_get(prom.port(), "/api/v1/query?query=" + q).value_or("");
  };
  std::string up, state;
  bool scraped = eventually(
    [&] {
      up = query("up");
      state = query("natsvisor_connection_state%7Bstate%3D%22connected%22%7D");
      return up.find(",\"1\"]") != std::string::npos
             && state.find("\"url\":\"" + server.url() + "\"") != std::string::npos;
    },
    60s);
  INFO("up: " << up << "\nstate: " << state << "\nprometheus log:\n" << prom.log());
  REQUIRE(scraped);
  CHECK_THAT(up, Catch::Contains("\"job\":\"natsvisor\""));
  CHECK_THAT(state, Catch::Contains("\"job\":\"natsvisor\""));
  CHECK_THAT(state, Catch::Contains(",\"1\"]")); // the one-hot sample of the connected state
  CHECK_THAT(query("natsvisor_restarts_total"), Catch::Contains("\"app\":\"natsvisor\""));
}

TEST_CASE("the metrics endpoint answers 503 without a report and stops with its owner",
          "[metrics]") {
  int port = 0;
  {
    auto endpoint = metrics_endpoint::start("127.0.0.1:0", [] { return std::nullopt; });
    REQUIRE(endpoint);
    port = (*endpoint)->port();
    auto r = http_get(port, "/metrics");
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK_THAT(r->body, Catch::Contains("did not answer"));
  }
  CHECK_FALSE(http_get(port, "/metrics")); // destroyed: nothing listens any more
}

TEST_CASE("a metrics_listen address that cannot be bound is reported and the service works",
          "[metrics]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.metrics_listen = "127.0.0.1:" + std::to_string(server.port()); // nats-server holds it
  service_fixture f{s};
  CHECK(f.svc->metrics_error() == errc::invalid_config);
  CHECK_THAT(detail_of(f.svc->metrics_error()), Catch::Contains("natsvisor.metrics_listen"));
  CHECK(f.svc->metrics_port() == 0);
  CHECK(f.svc->get_connection());
}

TEST_CASE("metrics_listen takes host:port and names the key when malformed", "[metrics][config]") {
  auto with = [](const std::string& v) {
    caf::settings group;
    group["metrics_listen"] = v;
    return parse_settings(group, [](const std::string&) { return std::nullopt; });
  };
  CHECK(with("")->metrics_listen.empty());
  CHECK(with("127.0.0.1:9464")->metrics_listen == "127.0.0.1:9464");
  CHECK(with("[::1]:9464"));
  CHECK(with("localhost:0"));
  for (auto bad : {"127.0.0.1", ":9464", "127.0.0.1:", "127.0.0.1:65536", "::1:9464",
                   "127.0.0.1:94x4", "host name:1", "[::1:9464"}) {
    INFO(bad);
    auto r = with(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::invalid_config);
    CHECK_THAT(detail_of(r.error()), Catch::Contains("natsvisor.metrics_listen"));
  }
  auto addr = parse_listen_address("[::1]:9464");
  REQUIRE(addr);
  CHECK(addr->host == "::1");
  CHECK(addr->port == 9464);
}
