#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <stdexcept>

#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/requests.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

TEST_CASE("100 actors asking for the same URL at once share exactly one connection",
          "[supervisor]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  std::atomic<int> answered{0};
  std::mutex mx;
  std::set<natsConnection*> seen;
  auto svc = f.svc->api();
  for (int i = 0; i < 100; ++i)
    f.sys.spawn([&, svc](caf::event_based_actor* self) {
      request_connection(self, svc).then(
        [&](const connection_handle& h) {
          std::lock_guard<std::mutex> guard{mx};
          seen.insert(h.get());
          ++answered;
        },
        [&](caf::error&) { ++answered; });
    });
  REQUIRE(eventually([&] { return answered.load() == 100; }));
  {
    std::lock_guard<std::mutex> guard{mx};
    CHECK(seen.size() == 1);
    CHECK(seen.count(nullptr) == 0);
  }
  REQUIRE(eventually([&] { return server.connection_count() == 1; }));
  CHECK(server.connection_count() == 1);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->generation == 1);
}

TEST_CASE("get_connection hands out a usable handle with a redacted URL and a generation",
          "[supervisor]") {
  nats_server server;
  auto s = fast_settings(server.url());
  service_fixture f{s};
  auto h = f.svc->get_connection();
  REQUIRE(h);
  CHECK(h->url() == server.url());
  CHECK(h->generation() == 1);
  CHECK_FALSE(h->closed());
  CHECK(natsConnection_PublishString(h->get(), "t.x", "hi") == NATS_OK);
  CHECK(natsConnection_FlushTimeout(h->get(), 2000) == NATS_OK);
  auto again = f.svc->get_connection(server.url());
  REQUIRE(again);
  CHECK(again->get() == h->get());
  auto ev = f.await_state(connection_state::connected);
  REQUIRE(ev);
  CHECK(ev->generation == 1);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->state == connection_state::connected);
  CHECK(st->out_msgs >= 1);
  CHECK(st->restarts == 0);
}

TEST_CASE("a URL with credentials is never shown with them", "[supervisor][bad-input]") {
  nats_server server;
  auto url = "nats://bob:s3cret@127.0.0.1:" + std::to_string(server.port());
  service_fixture f{fast_settings(url)};
  auto h = f.svc->get_connection();
  // The server has no auth configured, so it accepts any user; what matters is the text.
  REQUIRE(h);
  CHECK(h->url() == "nats://***@127.0.0.1:" + std::to_string(server.port()));
  auto report = f.svc->status();
  REQUIRE(report);
  REQUIRE(report->size() == 1);
  CHECK(report->front().url.find("s3cret") == std::string::npos);
}

TEST_CASE("close_connection closes the handle and a later request opens a new generation",
          "[supervisor]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto h = f.svc->get_connection();
  auto js = f.svc->get_jetstream();
  REQUIRE(h);
  REQUIRE(js);
  REQUIRE(eventually([&] { return server.connection_count() == 1; }));
  REQUIRE_FALSE(f.svc->close_connection());
  CHECK(h->closed());
  CHECK(js->closed());
  CHECK(natsConnection_PublishString(h->get(), "t.x", "late") == NATS_CONNECTION_CLOSED);
  CHECK(eventually([&] { return server.connection_count() == 0; }));
  REQUIRE(f.await_state(connection_state::closed));
  auto fresh = f.svc->get_connection();
  REQUIRE(fresh);
  CHECK(fresh->generation() == 2);
  CHECK_FALSE(fresh->closed());
  // Closing a URL that was never opened is harmless.
  CHECK_FALSE(f.svc->close_connection("nats://127.0.0.1:1"));
}

TEST_CASE("stopping the service closes every connection", "[supervisor]") {
  nats_server a;
  nats_server b;
  service_fixture f{fast_settings(a.url())};
  auto ha = f.svc->get_connection();
  auto hb = f.svc->get_connection(b.url());
  REQUIRE(ha);
  REQUIRE(hb);
  REQUIRE(eventually([&] { return a.connection_count() == 1 && b.connection_count() == 1; }));
  f.svc->stop();
  CHECK(ha->closed());
  CHECK(hb->closed());
  CHECK(eventually([&] { return a.connection_count() == 0 && b.connection_count() == 0; }));
  auto after = f.svc->get_connection();
  REQUIRE_FALSE(after);
  CHECK(code_of(after.error()) == errc::service_stopped);
}

TEST_CASE("health_check reports a real round trip", "[supervisor]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto h = f.svc->health_check();
  REQUIRE(h);
  CHECK(h->healthy);
  CHECK(h->rtt > caf::timespan{0});
  CHECK(h->rtt < 1s);
  CHECK(h->generation == 1);
  server.kill();
  REQUIRE(f.await_state(connection_state::reconnecting));
  auto down = f.svc->health_check();
  REQUIRE(down);
  CHECK_FALSE(down->healthy);
  CHECK_FALSE(down->detail.empty());
}

TEST_CASE("eagerly configured URLs connect before the first request", "[supervisor]") {
  nats_server server;
  auto s = fast_settings("nats://127.0.0.1:1"); // default URL unused
  s.urls = {server.url()};
  service_fixture f{s};
  REQUIRE(eventually([&] { return server.connection_count() == 1; }));
  auto ev = f.await_state(connection_state::connected);
  REQUIRE(ev);
  CHECK(ev->url == server.url());
}

TEST_CASE("a JetStream publish through the handle is acknowledged", "[jetstream]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto js = f.svc->get_jetstream();
  REQUIRE(js);
  CHECK(js->generation() == 1);
  REQUIRE(add_stream(js->get(), "ORDERS", "orders.>") == NATS_OK);
  jsPubAck* ack = nullptr;
  REQUIRE(js_Publish(&ack, js->get(), "orders.new", "o1", 2, nullptr, nullptr) == NATS_OK);
  REQUIRE(ack != nullptr);
  CHECK(std::string{ack->Stream} == "ORDERS");
  CHECK(ack->Sequence == 1);
  jsPubAck_Destroy(ack);
  auto same = f.svc->get_jetstream();
  REQUIRE(same);
  CHECK(same->get() == js->get()); // cached for the generation
}

TEST_CASE("a server without JetStream gives jetstream_unavailable", "[jetstream][bad-input]") {
  server_options opts;
  opts.jetstream = false;
  nats_server server{opts};
  service_fixture f{fast_settings(server.url())};
  REQUIRE(f.svc->get_connection());
  auto js = f.svc->get_jetstream();
  REQUIRE_FALSE(js);
  CHECK(code_of(js.error()) == errc::jetstream_unavailable);
}

TEST_CASE("scopes release on normal exit and on an exception", "[scope]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto active = [&] {
    auto st = f.status_of(server.url());
    return st ? static_cast<int64_t>(st->active_scopes) : -1;
  };
  SECTION("normal exit") {
    bool ran = false;
    auto err = f.svc->with_connection([&](const connection_handle& h) {
      ran = true;
      CHECK(natsConnection_PublishString(h.get(), "s.x", "1") == NATS_OK);
      CHECK(active() == 1);
    });
    CHECK_FALSE(err);
    CHECK(ran);
    CHECK(eventually([&] { return active() == 0; }));
  }
  SECTION("exception inside the scope") {
    CHECK_THROWS_AS(f.svc->with_jetstream([&](const jetstream_handle& js) {
      CHECK(js.get() != nullptr);
      CHECK(active() == 1);
      throw std::runtime_error("boom");
    }),
                    std::runtime_error);
    CHECK(eventually([&] { return active() == 0; }));
  }
  SECTION("an event-based actor's scope ends with the actor's last copy") {
    auto svc = f.svc->api();
    std::atomic<bool> got{false};
    f.sys.spawn([&, svc](caf::event_based_actor* self) {
      request_connection_scope(self, svc).then([&, self](connection_scope scope) {
        got = scope.get() != nullptr;
        // Keep the scope until a later message, then drop it by quitting.
        self->delayed_send(self, 50ms, caf::atom("done"));
        self->become([self, scope](caf::atom_value) { self->quit(); });
      });
    });
    REQUIRE(eventually([&] { return got.load() && active() == 1; }));
    CHECK(eventually([&] { return active() == 0; }));
  }
  SECTION("a scope that cannot be had reports the error and runs nothing") {
    bool ran = false;
    auto err
      = f.svc->with_connection([&](const connection_handle&) { ran = true; }, "nats://bad url");
    CHECK(code_of(err) == errc::invalid_url);
    CHECK_FALSE(ran);
  }
}

TEST_CASE("malformed URLs give invalid_url and create no connection", "[bad-input]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  for (auto bad :
       {"", "not a url", "nats://host:99999", "http://127.0.0.1:4222", "nats://user:pw@:1"}) {
    INFO("URL: " << bad);
    auto h = f.svc->get_connection(bad[0] == '\0' ? std::string{" "} : std::string{bad});
    REQUIRE_FALSE(h);
    CHECK(code_of(h.error()) == errc::invalid_url);
  }
  auto report = f.svc->status();
  REQUIRE(report);
  CHECK(report->empty());
  CHECK(server.connection_count() == 0);
}

TEST_CASE("an unreachable port gives a typed error at the deadline and leaks nothing",
          "[bad-input][supervisor]") {
  auto port = nats_server::free_port(); // nothing listens there
  auto url = "nats://127.0.0.1:" + std::to_string(port);
  auto s = fast_settings(url);
  s.request_timeout = 1s;
  service_fixture f{s};
  auto start = std::chrono::steady_clock::now();
  auto h = f.svc->get_connection();
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(h);
  auto code = code_of(h.error());
  CHECK((code == errc::timeout || code == errc::gave_up));
  CHECK(took < 3s);
  auto js = f.svc->get_jetstream();
  REQUIRE_FALSE(js);
  auto health = f.svc->health_check();
  REQUIRE(health);
  CHECK_FALSE(health->healthy);
  REQUIRE_FALSE(f.svc->close_connection());
}
