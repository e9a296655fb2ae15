#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "monitor_http.hpp"
#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/requests.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

settings pool_settings(const std::string& url, int size) {
  auto s = fast_settings(url);
  s.connection_pool_size = size;
  s.lease_timeout = 5s;
  return s;
}

pool_status pool_of(service_fixture& f, const std::string& url) {
  auto st = f.status_of(url);
  return st ? st->pool : pool_status{};
}

} // namespace

TEST_CASE("leases reuse idle connections and create new ones up to the pool size",
          "[pool][lease]") {
  nats_server server;
  service_fixture f{pool_settings(server.url(), 3)};
  auto a = f.svc->lease();
  auto b = f.svc->lease();
  auto c = f.svc->lease();
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  std::set<natsConnection*> distinct{a->get(), b->get(), c->get()};
  CHECK(distinct.size() == 3);
  CHECK(eventually([&] { return server.connection_count() == 3; }));
  auto reused = a->get();
  a->release();
  auto again = f.svc->lease();
  REQUIRE(again);
  CHECK(again->get() == reused);
  CHECK(server.connection_count() == 3);
  auto p = pool_of(f, server.url());
  CHECK(p.created == 3);
  CHECK(p.active == 3);
  CHECK(p.size == 3);
  CHECK(natsConnection_PublishString(again->get(), "lease.x", "1") == NATS_OK);
}

TEST_CASE("lease requests wait in FIFO order and time out with pool_exhausted", "[pool][lease]") {
  nats_server server;
  service_fixture f{pool_settings(server.url(), 1)};
  auto held = f.svc->lease();
  REQUIRE(held);
  SECTION("FIFO") {
    std::mutex mx;
    std::vector<int> order;
    auto svc = f.svc->api();
    auto waiter = [&, svc](int n) {
      f.sys.spawn([&, svc, n](caf::event_based_actor* self) {
        request_lease(self, svc).then([&, n](lease l) {
          {
            std::lock_guard<std::mutex> guard{mx};
            order.push_back(n);
          }
          l.release(); // hand it on to the next waiter
        });
      });
    };
    waiter(1);
    REQUIRE(eventually([&] { return pool_of(f, server.url()).waiting == 1; }));
    waiter(2);
    REQUIRE(eventually([&] { return pool_of(f, server.url()).waiting == 2; }));
    waiter(3);
    REQUIRE(eventually([&] { return pool_of(f, server.url()).waiting == 3; }));
    held->release();
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> guard{mx};
      return order.size() == 3;
    }));
    CHECK(order == std::vector<int>{1, 2, 3});
    // The first lease waited too: for its connection to be created.
    CHECK(pool_of(f, server.url()).waits == 4);
    CHECK(server.connection_count() == 1);
  }
  SECTION("timeout") {
    auto start = std::chrono::steady_clock::now();
    auto late = f.svc->lease({}, 300ms);
    auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(late);
    CHECK(code_of(late.error()) == errc::pool_exhausted);
    CHECK_THAT(detail_of(late.error()), Catch::Contains("1 of 1 leased"));
    CHECK(took >= 300ms);
    CHECK(took < 2s);
    auto p = pool_of(f, server.url());
    CHECK(p.timeouts == 1);
    CHECK(p.waiting == 0);
  }
}

TEST_CASE("a lease returned from another thread, or twice, is harmless", "[pool][lease]") {
  nats_server server;
  service_fixture f{pool_settings(server.url(), 2)};
  auto l = f.svc->lease();
  REQUIRE(l);
  auto copy = *l;
  SECTION("dropping every copy returns it") {
    std::thread other{[moved = std::move(*l)]() mutable { (void)moved; }};
    other.join();
    CHECK(pool_of(f, server.url()).active == 1); // the copy still holds the loan
    copy = lease{};
  }
  SECTION("release on any copy returns it for all, once") {
    std::thread other{[moved = std::move(*l)]() mutable { moved.release(); }};
    other.join();
    copy.release();
    copy.release();
  }
  REQUIRE(eventually([&] { return pool_of(f, server.url()).active == 0; }));
  CHECK(pool_of(f, server.url()).idle == 1);
  auto next = f.svc->lease();
  REQUIRE(next);
  CHECK(pool_of(f, server.url()).size == 1);
  // A lease outliving the service returns into nothing, without harm.
  f.svc->stop();
  next->release();
}

TEST_CASE("a lease held past leak_threshold is reported", "[pool][lease]") {
  nats_server server;
  auto s = pool_settings(server.url(), 2);
  s.leak_threshold = 200ms;
  service_fixture f{s};
  auto l = f.svc->lease();
  REQUIRE(l);
  std::optional<lease_leaked> leaked;
  f.watcher->receive_while([&] { return !leaked; })(
    [&](const lease_leaked& ev) { leaked = ev; }, [](const state_changed&) {},
    caf::after(std::chrono::seconds(5)) >> [&] { leaked = lease_leaked{}; });
  REQUIRE(leaked);
  CHECK(leaked->lease == l->id());
  CHECK(leaked->held >= 200ms);
  CHECK(leaked->url == server.url());
  CHECK(pool_of(f, server.url()).leaks == 1);
}

TEST_CASE("a lease whose connection died is not handed out again until it is healthy",
          "[pool][lease][faults]") {
  nats_server server;
  auto s = pool_settings(server.url(), 1);
  s.request_timeout = 10s;
  service_fixture f{s};
  auto l = f.svc->lease();
  REQUIRE(l);
  auto first = l->handle().generation();
  server.kill();
  REQUIRE(eventually([&] { return l->handle().closed(); }));
  l->release();
  auto refused = f.svc->lease({}, 300ms);
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == errc::pool_exhausted);
  server.start();
  auto fresh = f.svc->lease({}, 5s);
  REQUIRE(fresh);
  CHECK_FALSE(fresh->handle().closed());
  CHECK(fresh->handle().generation() > first);
  CHECK(natsConnection_FlushTimeout(fresh->get(), 2000) == NATS_OK);
}

TEST_CASE("connections at the server never exceed the pool size, before and after faults",
          "[pool][faults][regression]") {
  nats_server server;
  auto s = pool_settings(server.url(), 3);
  s.request_timeout = 10s;
  service_fixture f{s};
  auto svc = f.svc->api();
  std::atomic<int> done{0};
  auto storm = [&] {
    done = 0;
    for (int i = 0; i < 20; ++i)
      f.sys.spawn([&, svc](caf::event_based_actor* self) {
        request_lease(self, svc).then(
          [&](lease l) {
            natsConnection_PublishString(l.get(), "storm.x", "1");
            ++done;
          },
          [&](caf::error&) { ++done; });
      });
    REQUIRE(eventually([&] { return done.load() == 20; }, 20s));
  };
  // No sampling: the server lists closed connections too (state=all), so a connection that came
  // and went between two looks still counts. Without faults no connection ends, so every
  // connection the server ever saw was open at once.
  auto ever = [&] {
    auto all = connz(server.monitor_port(), true);
    REQUIRE(all);
    return *all;
  };
  storm();
  auto first = ever();
  CHECK_FALSE(first.empty());
  CHECK(first.size() <= 3);
  CHECK(pool_of(f, server.url()).created <= 3);
  server.kill();
  server.start();
  // Settled: every pooled connection that exists is connected, idle and known to the server.
  REQUIRE(eventually(
    [&] {
      auto p = pool_of(f, server.url());
      return p.size >= 1 && p.idle == p.size
             && server.connection_count() == static_cast<int>(p.size);
    },
    20s));
  std::set<int> known;
  int open = 0;
  for (auto& c : ever()) {
    known.insert(c.cid);
    open += c.closed ? 0 : 1;
  }
  CHECK(open >= 1);
  storm();
  int fresh = 0;
  for (auto& c : ever())
    fresh += known.count(c.cid) == 0 ? 1 : 0;
  CHECK(open + fresh <= 3);
  CHECK(server.connection_count() <= 3);
  CHECK(server.connection_count() >= 1);
}

TEST_CASE("a lease requested while the URL closes is refused and the close completes",
          "[pool][lease]") {
  nats_server server;
  service_fixture f{pool_settings(server.url(), 1)};
  auto held = f.svc->lease();
  REQUIRE(held);
  auto svc = f.svc->api();
  std::atomic<int> code{-1};
  f.sys.spawn([&, svc](caf::event_based_actor* self) {
    request_lease(self, svc).then([&](lease) { code = 0; },
                                  [&](caf::error& err) { code = static_cast<int>(code_of(err)); });
  });
  REQUIRE(eventually([&] { return pool_of(f, server.url()).waiting == 1; }));
  REQUIRE_FALSE(f.svc->close_connection());
  CHECK(eventually([&] { return code.load() == static_cast<int>(errc::connection_closed); }));
  CHECK(held->handle().closed());
  CHECK(eventually([&] { return server.connection_count() == 0; }));
}

TEST_CASE("when every pooled connection was given up on leases fail with gave_up at once",
          "[pool][lease][faults]") {
  nats_server server;
  auto s = pool_settings(server.url(), 1);
  s.policy.max_attempts = 1;
  service_fixture f{s};
  REQUIRE(f.svc->lease());
  server.kill();
  REQUIRE(f.await_state(connection_state::gave_up, 15s));
  auto start = std::chrono::steady_clock::now();
  auto l = f.svc->lease({}, 3s);
  REQUIRE_FALSE(l);
  CHECK(code_of(l.error()) == errc::gave_up);
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  server.start();
  REQUIRE_FALSE(f.svc->reset());
  CHECK(f.svc->lease({}, 5s));
}
