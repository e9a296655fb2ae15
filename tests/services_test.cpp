#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "caf/all.hpp"

#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/requests.hpp"
#include "services/service_manager.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using names = std::vector<std::string>;

/// What the probe services did, shared with the test thread.
struct recorder {
  std::atomic<int> spawned{0};
  std::atomic<int> inits{0};
  std::atomic<int> destroyed{0};

  void note(names recorder::*list, const std::string& name) {
    std::lock_guard<std::mutex> guard{mx};
    (this->*list).push_back(name);
  }
  names read(names recorder::*list) {
    std::lock_guard<std::mutex> guard{mx};
    return this->*list;
  }
  void set_instance(const std::string& name, caf::actor_addr addr) {
    std::lock_guard<std::mutex> guard{mx};
    instances[name] = std::move(addr);
  }
  caf::actor instance(const std::string& name) {
    std::lock_guard<std::mutex> guard{mx};
    return caf::actor_cast<caf::actor>(instances[name]);
  }
  void set_dependency(const std::string& name, caf::actor_addr addr) {
    std::lock_guard<std::mutex> guard{mx};
    dependencies[name] = std::move(addr);
  }
  caf::actor_addr dependency(const std::string& name) {
    std::lock_guard<std::mutex> guard{mx};
    return dependencies[name];
  }

  std::mutex mx;
  names initialized; ///< in the order initialize began
  names cleaned;     ///< in the order cleanup ran
  std::map<std::string, caf::actor_addr> instances;
  std::map<std::string, caf::actor_addr> dependencies;
};

struct probe_options {
  std::string needs; ///< asked of the manager during initialize
  std::shared_ptr<std::atomic<int>> failures = std::make_shared<std::atomic<int>>(0);
  bool gated = false;  ///< initialize answers on (ok_atom)
  bool silent = false; ///< initialize never answers
};

struct probe_state {
  ~probe_state() {
    if (rec)
      ++rec->destroyed;
  }
  std::shared_ptr<recorder> rec;
  caf::response_promise gate;
  caf::actor dependency;
};

caf::behavior probe(caf::stateful_actor<probe_state>* self, std::string name,
                    std::shared_ptr<recorder> rec, probe_options opts) {
  self->state.rec = rec;
  rec->set_instance(name, self->address());
  return {
    [=](svc_init_atom, const caf::actor& manager) -> caf::result<void> {
      ++rec->inits;
      rec->note(&recorder::initialized, name);
      if (*opts.failures > 0) {
        --*opts.failures;
        return make_error(errc::connect_failed, "boom", "nats://127.0.0.1:1");
      }
      if (opts.gated || opts.silent) {
        self->state.gate = self->make_response_promise();
        return self->state.gate;
      }
      if (opts.needs.empty())
        return caf::unit;
      auto rp = self->make_response_promise();
      request_service(self, manager, opts.needs)
        .then(
          [=](const caf::actor& dep) mutable {
            self->state.dependency = dep;
            rec->set_dependency(name, dep.address());
            rp.deliver(caf::unit);
          },
          [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](svc_clean_atom) { rec->note(&recorder::cleaned, name); },
    [=](caf::ok_atom) {
      if (opts.gated)
        self->state.gate.deliver(caf::unit);
    },
  };
}

service_definition probe_def(const std::string& name, std::shared_ptr<recorder> rec,
                             probe_options opts = {}, bool eager = false) {
  return {name,
          [=](caf::actor_system& sys, const settings&) {
            ++rec->spawned;
            return sys.spawn(probe, name, rec, opts);
          },
          eager};
}

settings test_settings() {
  settings s;
  s.request_timeout = 5s;
  s.log_level = "warn";
  return s;
}

struct system_fixture {
  config cfg; // must outlive the actor system
  caf::actor_system sys{cfg};
};

probe_options failing(int n) {
  probe_options o;
  *o.failures = n;
  return o;
}

probe_options needing(std::string name) {
  probe_options o;
  o.needs = std::move(name);
  return o;
}

} // namespace

TEST_CASE("a service starts on first use and exactly once under 50 concurrent "
          "first requests",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  probe_options gated;
  gated.gated = true;
  service_manager m{f.sys, test_settings(), {probe_def("slow", rec, gated)}};
  CHECK(m.started().empty());
  CHECK(rec->spawned == 0);
  std::atomic<int> asked{0};
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::mutex mx;
  std::set<caf::actor_addr> seen;
  auto mgr = m.actor();
  for (int i = 0; i < 50; ++i)
    f.sys.spawn([&, mgr](caf::event_based_actor* self) {
      request_service(self, mgr, "slow")
        .then(
          [&](const caf::actor& svc) {
            std::lock_guard<std::mutex> guard{mx};
            seen.insert(svc.address());
            ++answered;
          },
          [&](caf::error&) {
            ++failed;
            ++answered;
          });
      ++asked; // the request is in the manager's mailbox by now
    });
  // Every request is queued before initialize may answer: all 50 meet a pending
  // start.
  REQUIRE(eventually([&] { return asked == 50 && rec->inits == 1; }));
  caf::anon_send(rec->instance("slow"), caf::ok_atom_v);
  REQUIRE(eventually([&] { return answered == 50; }));
  CHECK(failed == 0);
  CHECK(rec->spawned == 1);
  CHECK(rec->inits == 1);
  {
    std::lock_guard<std::mutex> guard{mx};
    CHECK(seen.size() == 1);
  }
  CHECK(m.started() == names{"slow"});
  auto again = m.get("slow");
  REQUIRE(again);
  CHECK(seen.count(again->address()) == 1);
  CHECK(rec->inits == 1);
}

TEST_CASE("eager services are started by the constructor in definition order", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{
    f.sys,
    test_settings(),
    {probe_def("lazy", rec), probe_def("e1", rec, {}, true), probe_def("e2", rec, {}, true)}};
  CHECK(m.started() == names{"e1", "e2"});
  CHECK(rec->read(&recorder::initialized) == names{"e1", "e2"});
  CHECK(rec->spawned == 2);
}

TEST_CASE("services stop in the reverse order of their start", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{
    f.sys, test_settings(), {probe_def("a", rec), probe_def("b", rec), probe_def("c", rec)}};
  REQUIRE(m.get("c"));
  REQUIRE(m.get("a"));
  REQUIRE(m.get("b"));
  CHECK(m.started() == names{"c", "a", "b"});
  m.stop();
  CHECK(rec->read(&recorder::cleaned) == names{"b", "a", "c"});
  CHECK(m.started().empty());
  CHECK(eventually([&] { return rec->destroyed == 3; }));
  auto late = m.get("a");
  REQUIRE_FALSE(late);
  CHECK(late.error() == errc::service_stopped);
  m.stop(); // idempotent
  CHECK(rec->read(&recorder::cleaned).size() == 3);
}

TEST_CASE("a service that asks for another during initialize gets it and the "
          "dependency "
          "starts first and stops last",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{
    f.sys, test_settings(), {probe_def("app", rec, needing("db")), probe_def("db", rec)}};
  auto app = m.get("app");
  REQUIRE(app);
  CHECK(m.started() == names{"db", "app"});
  auto db = m.get("db");
  REQUIRE(db);
  CHECK(rec->dependency("app") == db->address());
  CHECK(rec->spawned == 2);
  m.stop();
  CHECK(rec->read(&recorder::cleaned) == names{"app", "db"});
}

TEST_CASE("a failing initialize reaches the requester, leaves nothing started "
          "and is retried "
          "by the next request",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{f.sys, test_settings(), {probe_def("flaky", rec, failing(1))}};
  auto first = m.get("flaky");
  REQUIRE_FALSE(first);
  CHECK(first.error() == errc::connect_failed);
  CHECK(detail_of(first.error()).find("flaky") != std::string::npos);
  CHECK(detail_of(first.error()).find("boom") != std::string::npos);
  CHECK(url_of(first.error()) == "nats://127.0.0.1:1");
  CHECK(m.started().empty());
  CHECK(eventually([&] { return rec->destroyed == 1; }));
  auto second = m.get("flaky");
  REQUIRE(second);
  CHECK(rec->inits == 2);
  CHECK(rec->spawned == 2);
  CHECK(m.started() == names{"flaky"});
  m.stop();
  // Cleanup only for the instance that initialized.
  CHECK(rec->read(&recorder::cleaned) == names{"flaky"});
}

TEST_CASE("a failing dependency fails its dependent and neither stays", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{f.sys,
                    test_settings(),
                    {probe_def("app", rec, needing("db")), probe_def("db", rec, failing(1))}};
  auto app = m.get("app");
  REQUIRE_FALSE(app);
  CHECK(app.error() == errc::connect_failed);
  CHECK(detail_of(app.error()).find("'app'") != std::string::npos);
  CHECK(detail_of(app.error()).find("'db'") != std::string::npos);
  CHECK(m.started().empty());
  CHECK(eventually([&] { return rec->destroyed == 2; }));
  REQUIRE(m.get("app"));
  CHECK(m.started() == names{"db", "app"});
}

TEST_CASE("an initialize that does not answer in time fails with timeout", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  auto s = test_settings();
  s.request_timeout = 300ms;
  probe_options silent;
  silent.silent = true;
  service_manager m{f.sys, s, {probe_def("mute", rec, silent)}};
  auto r = m.get("mute");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::timeout);
  CHECK(detail_of(r.error()).find("'mute'") != std::string::npos);
  CHECK(m.started().empty());
  CHECK(eventually([&] { return rec->destroyed == 1; }));
}

TEST_CASE("an unknown service name is answered with unknown_service", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{f.sys, test_settings(), {probe_def("a", rec)}};
  auto r = m.get("nope");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::unknown_service);
  CHECK(detail_of(r.error()).find("nope") != std::string::npos);
  // Same answer to an actor.
  std::optional<caf::error> got;
  std::mutex mx;
  auto mgr = m.actor();
  f.sys.spawn([&, mgr](caf::event_based_actor* self) {
    request_service(self, mgr, "nope")
      .then([](const caf::actor&) { /* nop: not expected */ },
            [&](caf::error& err) {
              std::lock_guard<std::mutex> guard{mx};
              got = err;
            });
  });
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> guard{mx};
    return got.has_value();
  }));
  CHECK(*got == errc::unknown_service);
  CHECK(rec->spawned == 0);
}

TEST_CASE("leaving the scope of service_manager stops every service in reverse "
          "start order",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  {
    service_manager m{f.sys,
                      test_settings(),
                      {probe_def("x", rec), probe_def("y", rec), probe_def("z", rec, {}, true)}};
    REQUIRE(m.get("x"));
    REQUIRE(m.get("y"));
    CHECK(rec->read(&recorder::cleaned).empty());
  }
  CHECK(rec->read(&recorder::cleaned) == names{"y", "x", "z"});
  CHECK(eventually([&] { return rec->destroyed == 3; }));
}

TEST_CASE("a dependency cycle fails at once instead of at the deadline", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  auto s = test_settings();
  s.request_timeout = 10s;
  service_manager m{
    f.sys, s, {probe_def("a", rec, needing("b")), probe_def("b", rec, needing("a"))}};
  auto before = std::chrono::steady_clock::now();
  auto r = m.get("a");
  REQUIRE_FALSE(r);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
  CHECK(r.error() == errc::invalid_config);
  CHECK(detail_of(r.error()).find("dependency cycle: b -> a -> b") != std::string::npos);
  CHECK(m.started().empty());
  CHECK(eventually([&] { return rec->destroyed == 2; }));
}

TEST_CASE("a service asking for itself during initialize is a cycle", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{f.sys, test_settings(), {probe_def("self", rec, needing("self"))}};
  auto r = m.get("self");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_config);
  CHECK(m.started().empty());
}

TEST_CASE("invalid definitions make the constructor throw", "[services][bad-input]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  auto make_dup = [&] {
    service_manager m{f.sys, test_settings(), {probe_def("a", rec), probe_def("a", rec)}};
  };
  CHECK_THROWS_AS(make_dup(), service_error);
  try {
    make_dup();
  } catch (const service_error& e) {
    CHECK(e.error() == errc::invalid_config);
  }
  auto make_unnamed = [&] { service_manager m{f.sys, test_settings(), {probe_def("", rec)}}; };
  CHECK_THROWS_AS(make_unnamed(), service_error);
  auto make_no_factory = [&] {
    service_manager m{f.sys, test_settings(), {service_definition{"x", nullptr, false}}};
  };
  CHECK_THROWS_AS(make_no_factory(), service_error);
  CHECK(rec->spawned == 0);
}

TEST_CASE("a failing eager service makes the constructor throw after stopping "
          "those started "
          "before it",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  auto make = [&] {
    service_manager m{f.sys,
                      test_settings(),
                      {probe_def("e1", rec, {}, true), probe_def("e2", rec, failing(1), true),
                       probe_def("e3", rec, {}, true)}};
  };
  CHECK_THROWS_AS(make(), service_error);
  CHECK(rec->read(&recorder::initialized) == names{"e1", "e2"});
  CHECK(rec->read(&recorder::cleaned) == names{"e1"});
  CHECK(eventually([&] { return rec->destroyed == 2; }));
}

TEST_CASE("a factory that throws is reported as a failed start", "[services][bad-input]") {
  system_fixture f;
  service_definition bad{
    "bad",
    [](caf::actor_system&, const settings&) -> caf::actor { throw std::runtime_error("no way"); },
    false};
  service_manager m{f.sys, test_settings(), {bad}};
  auto r = m.get("bad");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_config);
  CHECK(detail_of(r.error()).find("no way") != std::string::npos);
  CHECK(m.started().empty());
}

TEST_CASE("a started service that exits is dropped and restarts on next use", "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  service_manager m{f.sys, test_settings(), {probe_def("x", rec)}};
  auto first = m.get("x");
  REQUIRE(first);
  caf::anon_send_exit(*first, caf::exit_reason::kill);
  REQUIRE(eventually([&] { return m.started().empty(); }));
  auto second = m.get("x");
  REQUIRE(second);
  CHECK(second->address() != first->address());
  CHECK(rec->inits == 2);
  CHECK(m.started() == names{"x"});
}

TEST_CASE("find_cycle names the chain that would close a cycle", "[services][pure]") {
  std::map<std::string, std::set<std::string>> awaits{{"a", {"b"}}, {"b", {"c"}}};
  CHECK(find_cycle(awaits, "c", "a") == names{"c", "a", "b", "c"});
  CHECK(find_cycle(awaits, "c", "b") == names{"c", "b", "c"});
  CHECK(find_cycle(awaits, "x", "x") == names{"x", "x"});
  CHECK(find_cycle(awaits, "d", "a").empty());
  CHECK(find_cycle({}, "a", "b").empty());
}

TEST_CASE("init_failure keeps natsvisor codes and names the service", "[services][pure]") {
  auto e = init_failure("db", make_error(errc::gave_up, "too many", "nats://h:1"));
  CHECK(e == errc::gave_up);
  CHECK(detail_of(e) == "service 'db' failed to initialize: too many");
  CHECK(url_of(e) == "nats://h:1");
  CHECK(init_failure("db", caf::sec::request_timeout) == errc::timeout);
  CHECK(init_failure("db", caf::sec::request_receiver_down) == errc::service_stopped);
  CHECK(init_failure("db", caf::sec::unexpected_message) == caf::sec::unexpected_message);
}

// Needs the connection supervisor to answer (svc_init, actor) and (svc_clean);
// see the service manager's header for the protocol.
TEST_CASE("the connection service is registered as connection and serves "
          "connection requests",
          "[services][nats]") {
  nats_server server;
  system_fixture f;
  service_manager m{f.sys, fast_settings(server.url())};
  CHECK(m.started().empty());
  auto conn = m.get("connection");
  REQUIRE(conn);
  CHECK(m.started() == names{"connection"});
  std::mutex mx;
  std::optional<caf::expected<connection_handle>> got;
  auto svc = *conn;
  f.sys.spawn([&, svc](caf::event_based_actor* self) {
    request_connection(self, svc).then(
      [&](const connection_handle& h) {
        std::lock_guard<std::mutex> guard{mx};
        got = h;
      },
      [&](caf::error& err) {
        std::lock_guard<std::mutex> guard{mx};
        got = caf::expected<connection_handle>{std::move(err)};
      });
  });
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> guard{mx};
    return got.has_value();
  }));
  REQUIRE(*got);
  auto h = **got;
  CHECK(h.url() == server.url());
  CHECK_FALSE(h.closed());
  CHECK(natsConnection_PublishString(h.get(), "t.svc", "hi") == NATS_OK);
  REQUIRE(eventually([&] { return server.connection_count() == 1; }));
  m.stop();
  // Cleanup closes every connection.
  CHECK(h.closed());
  CHECK(eventually([&] { return server.connection_count() == 0; }));
}

TEST_CASE("a stop during a start finishes the start, refuses its requesters "
          "and cleans it up",
          "[services]") {
  system_fixture f;
  auto rec = std::make_shared<recorder>();
  probe_options gated;
  gated.gated = true;
  service_manager m{f.sys, test_settings(), {probe_def("slow", rec, gated), probe_def("b", rec)}};
  std::mutex mx;
  std::optional<caf::error> got;
  auto mgr = m.actor();
  f.sys.spawn([&, mgr](caf::event_based_actor* self) {
    request_service(self, mgr, "slow")
      .then([](const caf::actor&) { /* nop: not expected */ },
            [&](caf::error& err) {
              std::lock_guard<std::mutex> guard{mx};
              got = err;
            });
  });
  REQUIRE(eventually([&] { return rec->inits == 1; }));
  // Queued in the manager before initialize can answer (the answer follows the
  // release).
  caf::anon_send(mgr, svc_stop_atom_v);
  caf::anon_send(rec->instance("slow"), caf::ok_atom_v);
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> guard{mx};
    return got.has_value();
  }));
  CHECK(*got == errc::service_stopped);
  REQUIRE(eventually([&] { return rec->read(&recorder::cleaned) == names{"slow"}; }));
  CHECK(eventually([&] { return rec->destroyed == 1; }));
  m.stop();
  CHECK(rec->spawned == 1);
}
