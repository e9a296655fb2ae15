#include <catch2/catch.hpp>

#include <dirent.h>

#include <string>
#include <vector>

#include "nats_server.hpp"
#include "process_stats.hpp"
#include "service_fixture.hpp"

#include "actors/connection_actor.hpp"
#include "api/requests.hpp"
#include "base/publish_credit.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {


// Subscribes `subscriber` to `prefix`.0 .. `prefix`.<n-1> with all requests in flight at once
// (one event-based actor sends them and counts the answers), so 10,000 cost no 10,000 round
// trips in a row. Returns the ids by subject index; empty if any failed or the deadline passed.
std::vector<uint64_t> subscribe_many(service_fixture& f, const std::string& prefix, size_t n,
                                     const caf::actor& subscriber, caf::timespan deadline = 60s) {
  caf::scoped_actor waiter{f.sys};
  auto svc = f.svc->actor();
  auto client = f.sys.spawn([=, reply_to = caf::actor{waiter}](caf::event_based_actor* self) {
    auto ids = std::make_shared<std::vector<uint64_t>>(n, 0);
    auto left = std::make_shared<size_t>(n);
    auto failed = std::make_shared<bool>(false);
    for (size_t i = 0; i < n; ++i)
      request_subscribe(self, svc, prefix + "." + std::to_string(i), subscriber, {}, {}, deadline)
        .then(
          [=](uint64_t id) {
            (*ids)[i] = id;
            if (--*left == 0)
              self->send(reply_to, *failed ? std::vector<uint64_t>{} : *ids);
          },
          [=](caf::error&) {
            *failed = true;
            if (--*left == 0)
              self->send(reply_to, std::vector<uint64_t>{});
          });
  });
  std::vector<uint64_t> out;
  waiter->receive([&](std::vector<uint64_t>& ids) { out = std::move(ids); },
                  caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(deadline))
                    >> [] { /* nop: nothing by the deadline */ });
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  return out;
}

} // namespace

TEST_CASE("10000 message-path subscriptions on one connection use a constant number of threads",
          "[subscribe][scale]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  // Connected, with the reply subscription and one message-path subscription made: whatever a
  // connection needs once is there before counting.
  REQUIRE(f.svc->subscribe("warm.up", sub));
  REQUIRE(f.svc->health_check()->healthy);
  auto before = thread_count();
  constexpr size_t n = 10000;
  auto ids = subscribe_many(f, "many", n, sub);
  REQUIRE(ids.size() == n);
  auto after = thread_count();
  INFO("threads before " << before << ", after " << after << " subscriptions");
  // One thread per subscription would add 10,000; nats.c's shared pool adds at most its size.
  CHECK(after < before + 16);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->subscriptions == n + 1);
  // A sample of them receives: every 100th subject, each its own message.
  for (size_t i = 0; i < n; i += 100)
    REQUIRE_FALSE(f.svc->publish(outgoing{"many." + std::to_string(i), std::to_string(i), {}}));
  std::vector<bool> got(n, false);
  size_t received = 0;
  auto until = std::chrono::steady_clock::now() + 10s;
  while (received < n / 100 && std::chrono::steady_clock::now() < until) {
    sub->receive(
      [&](const nats_message& m) {
        auto i = std::stoul(m.payload);
        CHECK(m.subject == "many." + m.payload);
        CHECK(m.subscription == ids[i]);
        if (!got[i]) {
          got[i] = true;
          ++received;
        }
      },
      caf::after(1s) >> [] { /* nop: the deadline is checked by the loop */ });
  }
  CHECK(received == n / 100);
  CHECK(thread_count() < before + 16);
}

namespace {

// Receives the next slow_consumer event in the fixture's watcher, or nothing by the deadline.
std::optional<slow_consumer> next_slow_consumer(service_fixture& f, caf::timespan deadline) {
  std::optional<slow_consumer> got;
  f.watcher->receive([&](slow_consumer& ev) { got = std::move(ev); },
                     caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(deadline))
                       >> [] { /* nop: nothing arrived */ });
  return got;
}

// Takes every nats_message from `self`'s mailbox until none came for `quiet`; returns how many.
size_t drain(caf::scoped_actor& self, caf::timespan quiet = 500ms) {
  size_t n = 0;
  for (bool more = true; more;)
    self->receive([&](const nats_message&) { ++n; },
                  caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(quiet))
                    >> [&] { more = false; });
  return n;
}

packed_batch numbered(const std::string& subject, int n) {
  packed_batch b;
  b.subject = subject;
  for (int i = 0; i < n; ++i)
    b.add(std::to_string(i));
  return b;
}

} // namespace

TEST_CASE("a subscriber that does not keep up holds at most its pending limit and watchers get "
          "one slow_consumer event per episode",
          "[subscribe][slow]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.subscription_pending_messages = 100;
  s.subscription_delivery_threads = 4;
  service_fixture f{s};
  caf::scoped_actor slow{f.sys}; // takes nothing from its mailbox until the test drains it
  caf::scoped_actor fast{f.sys};
  caf::scoped_actor marker{f.sys};
  auto slow_id = f.svc->subscribe("slow.x", slow);
  auto fast_id = f.svc->subscribe("fast.x", fast);
  REQUIRE(slow_id);
  REQUIRE(fast_id);
  // One marker subscription on each of nats.c's 4 delivery threads (it assigns them round
  // robin): once every marker arrived, every thread has handed over or dropped everything the
  // connection read before the markers, so a burst is over.
  for (int i = 0; i < 4; ++i)
    REQUIRE(f.svc->subscribe("mark." + std::to_string(i), marker));
  auto settle = [&] {
    for (int i = 0; i < 4; ++i)
      REQUIRE_FALSE(f.svc->publish(outgoing{"mark." + std::to_string(i), "m", {}}));
    size_t marks = 0;
    for (bool more = true; more && marks < 4;)
      marker->receive([&](const nats_message&) { ++marks; },
                      caf::after(std::chrono::seconds(10)) >> [&] { more = false; });
    REQUIRE(marks == 4);
  };
  auto n = f.svc->publish_batch(numbered("slow.x", 1000));
  REQUIRE(n);
  REQUIRE(*n == 1000);
  auto ev = next_slow_consumer(f, 10s);
  REQUIRE(ev);
  CHECK(ev->subscription == *slow_id);
  CHECK(ev->subject == "slow.x");
  CHECK(ev->url == server.url());
  CHECK(ev->episodes == 1);
  CHECK(ev->dropped >= 1);
  // The other subscription keeps receiving meanwhile.
  REQUIRE_FALSE(f.svc->publish_confirmed(outgoing{"fast.x", "still here", {}}));
  bool fast_got = false;
  fast->receive([&](const nats_message& m) { fast_got = m.payload == "still here"; },
                caf::after(std::chrono::seconds(5)) >> [] { /* nop: checked below */ });
  CHECK(fast_got);
  settle();
  // The 900 drops were one episode: no second event for them.
  CHECK_FALSE(next_slow_consumer(f, 300ms));
  // Bounded: the slow subscriber holds exactly its limit, the rest was dropped (not 1000).
  CHECK(drain(slow) == 100);
  // Caught up (drained): messages flow again, and the next overflow is a new episode.
  REQUIRE(f.svc->publish_batch(numbered("slow.x", 1000)));
  auto again = next_slow_consumer(f, 10s);
  REQUIRE(again);
  CHECK(again->subscription == *slow_id);
  CHECK(again->episodes == 2);
  settle();
  CHECK_FALSE(next_slow_consumer(f, 300ms));
  CHECK(drain(slow) == 100);
}

TEST_CASE("subscription_delivery_threads 0 keeps nats.c's thread per subscription",
          "[subscribe][scale]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.subscription_delivery_threads = 0;
  service_fixture f{s};
  caf::scoped_actor sub{f.sys};
  REQUIRE(f.svc->subscribe("warm.up", sub));
  auto before = thread_count();
  auto ids = subscribe_many(f, "own", 200, sub);
  REQUIRE(ids.size() == 200);
  auto right_after = thread_count();
  bool grew = eventually([&] { return thread_count() >= before + 200; }, 5s);
  INFO("threads before " << before << ", right after " << right_after << ", later " << thread_count());
  CHECK(grew);
  REQUIRE_FALSE(f.svc->publish(outgoing{"own.7", "x", {}}));
  std::optional<nats_message> got;
  sub->receive([&](nats_message& m) { got = std::move(m); },
               caf::after(std::chrono::seconds(5)) >> [] { /* nop: checked below */ });
  REQUIRE(got);
  CHECK(got->subscription == ids[7]);
}

// Defect: the connection actor matched nats.c's slow-consumer error to a subscription by the
// natsSubscription pointer's value. nats.c does not hold the subscription for that callback, so
// after an unsubscribe the address can belong to a new subscription by the time a late error
// arrives, and the new one was told a slow-consumer episode it never had. A late error for a
// freed subscription whose address was reused looks exactly like an error naming the new
// subscription's pointer: that is sent here, and nothing may follow (the new subscription
// dropped nothing). A real overflow still is told.
TEST_CASE("a slow-consumer error naming a reused subscription address starts no episode of the "
          "new subscription",
          "[subscribe][slow][regression]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.subscription_pending_messages = 10;
  config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor sup{sys}; // the connection actor's supervisor
  auto credit = std::make_shared<publish_credit>(publish_cost{1000, 1 << 20});
  auto conn = sys.spawn<caf::detached>(
    connection_actor, server.url(), uint64_t{1}, connection_role::shared, uint32_t{0},
    caf::actor{sup}, std::make_shared<const settings>(s), std::make_shared<publish_ledger>(credit));
  bool up = false;
  sup->receive(
    [&](conn_up_atom, uint64_t, connection_handle&, jetstream_handle&, std::string&) { up = true; },
    caf::after(std::chrono::seconds(10)) >> [] { /* nop: checked below */ });
  REQUIRE(up);
  caf::scoped_actor subscriber{sys}; // takes nothing from its mailbox
  std::optional<uint64_t> id;
  sup
    ->request(conn, std::chrono::seconds(10), sub_atom_v, uint64_t{7}, std::string{"late.b"},
              std::string{}, caf::actor{subscriber})
    .receive([&](uint64_t x) { id = x; }, [](caf::error&) { /* nop: checked below */ });
  REQUIRE(id == 7u);
  // The subscription's address, as nats.c's error callback would pass it. The actor wrote its
  // table before answering, and answered before this reads it.
  auto* impl = dynamic_cast<connection_actor_type*>(caf::actor_cast<caf::abstract_actor*>(conn));
  REQUIRE(impl);
  auto key = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(impl->state.subscriptions.at(7)));
  caf::anon_send(conn, async_error_atom_v, static_cast<int32_t>(NATS_SLOW_CONSUMER), key);
  // Waits for what the supervisor is told about subscription 7, up to `deadline`.
  auto next_slow = [&](caf::timespan deadline) {
    std::optional<uint64_t> episodes;
    sup->receive(
      [&](sub_slow_atom, uint64_t sub, uint64_t, uint64_t n) {
        if (sub == 7)
          episodes = n;
      },
      caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(deadline)) >>
        [] { /* nop: nothing told */ });
    return episodes;
  };
  CHECK_FALSE(next_slow(1s));
  // A real overflow of subscription 7 is still told, once, as its first episode.
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, server.url().c_str()) == NATS_OK);
  for (int i = 0; i < 100; ++i)
    REQUIRE(natsConnection_PublishString(nc, "late.b", "x") == NATS_OK);
  REQUIRE(natsConnection_Flush(nc) == NATS_OK);
  natsConnection_Destroy(nc);
  auto episodes = next_slow(10s);
  REQUIRE(episodes);
  CHECK(*episodes == 1);
  caf::anon_send(conn, stop_conn_atom_v, caf::error{});
}
