// Connection names at the server ([names]) and status over NATS with the `natsvisor` tool
// ([cli]): real nats-server processes, the tool run as a child process from the build tree.

#include <catch2/catch.hpp>

#include <cstring>
#include <set>

#include "monitor_http.hpp"
#include "nats_server.hpp"
#include "service_fixture.hpp"
#include "subprocess.hpp"

#include "api/status_responder.hpp"
#include "messages/errors.hpp"
#include "tools/json_lite.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

const std::string cli = NATSVISOR_CLI_PATH;

process_result run_cli(std::vector<std::string> args, std::chrono::milliseconds deadline = 20s,
                       const std::function<bool(const std::string&)>& stop_when = {}) {
  args.insert(args.begin(), cli);
  return run_process(args, deadline, stop_when);
}

caf::expected<settings> parse_one(const char* key, const std::string& value) {
  caf::settings g;
  g[caf::string_view{key, std::strlen(key)}] = caf::config_value{value};
  return parse_settings(g, [](const std::string&) { return std::optional<std::string>{}; });
}

// Whether the server holds a subscription on `subject` (the message path answered the
// subscribe once the server had it, but the test does not see that answer).
bool server_has_subscription(const nats_server& srv, const std::string& subject) {
  auto conns = connz(srv.monitor_port());
  if (!conns)
    return false;
  for (auto& c : *conns)
    if (c.subscription_list.find("\"" + subject + "\"") != std::string::npos)
      return true;
  return false;
}

settings app_settings(const nats_server& srv, const std::string& app) {
  auto s = fast_settings(srv.url());
  s.app_name = app;
  s.status_responder = true;
  return s;
}

// Answers every status request with garbage: the tool must say so, not guess.
void garbage_responder(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  if (auto reply = natsMsg_GetReply(msg)) {
    natsConnection_PublishString(nc, reply, "{not json");
    natsConnection_PublishString(nc, reply, R"({"app":"impostor"})");
  }
  natsMsg_Destroy(msg);
}

} // namespace

TEST_CASE("app_name and status_responder are validated", "[names][config]") {
  CHECK(settings{}.app_name == "natsvisor");
  CHECK_FALSE(settings{}.status_responder);
  auto ok = parse_one("app_name", "orders-2_b");
  REQUIRE(ok);
  CHECK(ok->app_name == "orders-2_b");
  for (auto& bad : std::vector<std::string>{"", "a b", "a.b", "a*", "a>", "a/b", "x\ty",
                                            std::string(65, 'x')}) {
    INFO("app_name '" << bad << "'");
    auto s = parse_one("app_name", bad);
    REQUIRE_FALSE(s);
    CHECK(code_of(s.error()) == errc::invalid_config);
    CHECK_THAT(detail_of(s.error()), Catch::Contains("natsvisor.app_name"));
  }
  CHECK(parse_one("app_name", std::string(64, 'x')));
  auto on = parse_one("status_responder", "true");
  REQUIRE(on);
  CHECK(on->status_responder);
}

TEST_CASE("the server's /connz names the shared and a leased pool connection by app and role",
          "[names]") {
  nats_server srv;
  auto s = fast_settings(srv.url());
  s.app_name = "shop";
  s.connection_pool_size = 2;
  service_fixture f{s};
  REQUIRE(f.svc->get_connection());
  auto lease = f.svc->lease();
  REQUIRE(lease);
  std::vector<std::string> names;
  bool found = eventually([&] {
    names.clear();
    auto conns = connz(srv.monitor_port());
    if (!conns)
      return false;
    bool shared = false, pooled = false;
    for (auto& c : *conns) {
      names.push_back(c.name);
      shared = shared || c.name == "shop/shared/1";
      pooled = pooled
               || (c.name.rfind("shop/pool-", 0) == 0 && c.name.size() > 12
                   && c.name.compare(c.name.size() - 2, 2, "/1") == 0);
    }
    return shared && pooled;
  });
  INFO("names at the server: " << Catch::Detail::stringify(names));
  CHECK(found);
}

TEST_CASE("the status JSON escapes strings and never carries credentials", "[cli]") {
  status_identity who{"app\"1", "host\\x", 42, "00ff"};
  url_status u;
  u.url = "nats://***@127.0.0.1:4222";
  u.state = connection_state::restarting;
  u.generation = 3;
  u.pool.size = 2;
  u.pool.active = 1;
  u.last_error = "lost nats://alice:s3cret@10.0.0.1:4222\n\x01 caf\xc3\xa9 bad\xff";
  health_result h;
  h.url = u.url;
  h.healthy = true;
  h.rtt = 1500us;
  auto text = status_json(who, {u}, h);
  INFO(text);
  CHECK(text.find("s3cret") == std::string::npos);
  CHECK(text.find("alice") == std::string::npos);
  cli::json doc;
  std::string problem;
  REQUIRE(cli::parse_json(text, doc, problem));
  CHECK(doc.get("app")->s == "app\"1");
  CHECK(doc.get("host")->s == "host\\x");
  CHECK(doc.get("pid")->n == 42);
  auto& url = doc.get("urls")->items.at(0);
  CHECK(url.get("state")->s == "restarting");
  CHECK(url.get("generation")->n == 3);
  CHECK(url.get("rtt_ms")->n == Approx(1.5));
  CHECK(url.get("pool")->get("active")->n == 1);
  CHECK(url.get("buffered")->n == 0);
  CHECK(url.get("last_error")->s == "lost nats://***@10.0.0.1:4222\n\x01 caf\xc3\xa9 bad?");
  // Another URL than the health check's has no RTT.
  h.url = "nats://elsewhere:4222";
  REQUIRE(cli::parse_json(status_json(who, {u}, h), doc, problem));
  CHECK(doc.get("urls")->items.at(0).get("rtt_ms")->kind == cli::json::null);
  for (auto& bad : std::vector<std::string>{"", "{", "{\"a\" 1}", "[1,]", "\"\\x\"", "01", "[1] 2",
                                            "\"\\ud800\"", std::string(100, '[')}) {
    INFO("not JSON: " << bad);
    CHECK_FALSE(cli::parse_json(bad, doc, problem));
    CHECK_THAT(problem, Catch::Contains("at byte"));
  }
}

TEST_CASE("natsvisor --help and bad usage from the build tree", "[cli]") {
  for (auto args : {std::vector<std::string>{"--help"}, {"status", "--help"}, {"status", "-h"}}) {
    auto r = run_cli(args);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("Usage: natsvisor status"));
  }
  auto r = run_cli({"status", "--bogus"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("unknown option '--bogus'"));
  r = run_cli({"frobnicate"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("unknown command 'frobnicate'"));
  r = run_cli({"status", "--timeout", "soon"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("--timeout"));
  r = run_cli({"status", "--server"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("--server needs a value"));
}

TEST_CASE("natsvisor status lists two applications as a table and as JSON, and filters by app",
          "[cli]") {
  nats_server srv;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  connection_service alpha{sys, app_settings(srv, "alpha")};
  connection_service beta{sys, app_settings(srv, "beta")};
  REQUIRE(eventually([&] {
    return server_has_subscription(srv, "natsvisor.status.alpha")
           && server_has_subscription(srv, "natsvisor.status.beta");
  }));
  auto server = "--server=" + srv.url();

  auto table = run_cli({"status", server, "--timeout", "3000"});
  INFO("stdout:\n" << table.out << "stderr:\n" << table.err);
  CHECK(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::Contains("APP") && Catch::Contains("LAST ERROR"));
  CHECK_THAT(table.out, Catch::Contains("alpha") && Catch::Contains("beta"));
  CHECK_THAT(table.out, Catch::Contains(srv.url()) && Catch::Contains("connected"));

  auto js = run_cli({"status", server, "--json", "--timeout", "3000"});
  INFO("json:\n" << js.out << js.err);
  CHECK(js.exit_code == 0);
  cli::json doc;
  std::string problem;
  REQUIRE(cli::parse_json(js.out, doc, problem));
  REQUIRE(doc.kind == cli::json::array);
  std::set<std::string> apps;
  for (auto& reply : doc.items)
    apps.insert(reply.get("app") ? reply.get("app")->s : "?");
  CHECK(apps == std::set<std::string>{"alpha", "beta"});
  for (auto key :
       {"\"urls\":[", "\"state\":\"connected\"", "\"generation\":1", "\"restarts\":0", "\"pool\":{",
        "\"parked\":0", "\"subscriptions\":2", "\"last_error\":\"\"", "\"instance\":", "\"pid\":"})
    CHECK_THAT(js.out, Catch::Contains(key));

  auto only = run_cli({"status", server, "--app", "alpha", "--timeout", "3000"});
  INFO("--app alpha:\n" << only.out << only.err);
  CHECK(only.exit_code == 0);
  CHECK_THAT(only.out, Catch::Contains("alpha"));
  CHECK_THAT(only.out, !Catch::Contains("beta"));

  auto ghost = run_cli({"status", server, "--app", "ghost"});
  CHECK(ghost.exit_code == 2);
  CHECK_THAT(ghost.err, Catch::Contains("no natsvisor application named 'ghost' answered"));

  // --watch redraws every second until interrupted: stopped after its second frame.
  const std::string clear = "\x1b[H\x1b[2J";
  auto watch
    = run_cli({"status", server, "--watch", "--timeout", "3000"}, 20s, [&](const std::string& out) {
        auto first = out.find(clear);
        return first != std::string::npos && out.find(clear, first + 1) != std::string::npos;
      });
  INFO("--watch:\n" << watch.out << watch.err);
  CHECK(watch.stopped);
  CHECK_FALSE(watch.timed_out);
  CHECK_THAT(watch.out, Catch::Contains("alpha") && Catch::Contains("beta"));
}

TEST_CASE("natsvisor status fails clearly with no application, a malformed reply or no server",
          "[cli]") {
  nats_server srv;
  auto server = "--server=" + srv.url();

  SECTION("nobody answers: exit 2 with a message, at once (the server reports no responders)") {
    auto r = run_cli({"status", server, "--timeout", "5000"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("no natsvisor application answered"));
    CHECK(r.took < 4s);
  }
  SECTION("a reply that is not a status document: exit 4 naming the problem") {
    natsConnection* nc = nullptr;
    natsSubscription* sub = nullptr;
    REQUIRE(natsConnection_ConnectTo(&nc, srv.url().c_str()) == NATS_OK);
    REQUIRE(natsConnection_Subscribe(&sub, nc, status_subject, garbage_responder, nullptr)
            == NATS_OK);
    REQUIRE(natsConnection_Flush(nc) == NATS_OK);
    auto r = run_cli({"status", server, "--timeout", "3000"});
    INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
    CHECK(r.exit_code == 4);
    CHECK_THAT(r.err, Catch::Contains("malformed reply") && Catch::Contains("not JSON"));
    CHECK_THAT(r.err, Catch::Contains("has no array \"urls\""));
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }
  SECTION("no server at the address: exit 3 within the connect timeout") {
    auto url = "nats://u:topsecret@127.0.0.1:" + std::to_string(nats_server::free_port());
    auto r = run_cli({"status", "--server", url});
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Catch::Contains("cannot connect to nats://***@127.0.0.1:"));
    CHECK(r.err.find("topsecret") == std::string::npos);
    CHECK(r.took < 5s);
  }
}
