// Overload on the message path: a producer publishing far faster than its connection drains
// (a real nats-server behind a loopback proxy that forwards at a fixed byte rate). The mailboxes
// between the producer and nats.c must stay bounded and the producer must be told.
#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <vector>

#include "log_capture.hpp"
#include "nats_server.hpp"
#include "service_fixture.hpp"
#include "throttle_proxy.hpp"

#include "api/requests.hpp"
#include "base/credit_table.hpp"
#include "config/url.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

// 4 MiB/s to the server, 1 KiB messages: the producer below offers well over 10x that.
constexpr uint64_t drain_rate = 4u << 20;
constexpr size_t payload_size = 1024;
constexpr int attempts = 100000; // ~100 MiB offered

settings overload_settings(const std::string& url) {
  auto s = fast_settings(url);
  // The slow link must not look like a hung server: its PINGs queue behind the data.
  s.nats.ping_interval = 60s;
  s.nats.max_pings_out = 10;
  s.publish_credit_messages = 10000;
  s.publish_credit_bytes = 1 << 20;
  s.publish_buffer_messages = 10000;
  s.publish_buffer_bytes = 1 << 20;
  return s;
}

// Messages the watcher was told were dropped (any reason) so far, without waiting.
uint64_t told_dropped(service_fixture& f) {
  uint64_t n = 0;
  bool more = true;
  while (more)
    f.watcher->receive([&](publishes_dropped& ev) { n += ev.messages; },
                       [](state_changed&) { /* nop */ },
                       caf::after(std::chrono::milliseconds(0)) >> [&] { more = false; });
  return n;
}

// Counts what reaches the server on `subject`, on a connection of its own (not through the proxy).
struct arrivals {
  arrivals(const std::string& url, const char* subject) {
    REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_SubscribeSync(&sub, nc, subject) == NATS_OK);
    REQUIRE(natsSubscription_SetPendingLimits(sub, -1, -1) == NATS_OK);
    REQUIRE(natsConnection_Flush(nc) == NATS_OK);
  }
  ~arrivals() {
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }
  /// True once at least `n` arrived (all counted in `got`).
  bool reached(uint64_t n) {
    natsMsg* m = nullptr;
    while (got < n && natsSubscription_NextMsg(&m, sub, 10) == NATS_OK) {
      natsMsg_Destroy(m);
      ++got;
    }
    return got >= n;
  }
  natsConnection* nc = nullptr;
  natsSubscription* sub = nullptr;
  uint64_t got = 0;
};

// The bound the process may grow by: the credit and the outbox (both 1 MiB here), nats.c's
// buffers, and a generous allowance for threads and allocator slack. Without a bound the
// mailboxes hold ~100 MiB.
constexpr long growth_bound_kb = 16 * 1024;

// AddressSanitizer keeps freed memory in its quarantine (256 MiB by default) and
// ThreadSanitizer's shadow grows with every page touched: resident memory says nothing about
// natsvisor's bounds there, so the RSS bound is checked in normal builds only (the counts are
// checked in every build).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool rss_is_meaningful = false;
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool rss_is_meaningful = false;
#  else
constexpr bool rss_is_meaningful = true;
#  endif
#else
constexpr bool rss_is_meaningful = true;
#endif

} // namespace

// The plain fire-and-forget API (no publisher): charged at the supervisor's door, so what lies
// beyond it stays bounded and every publish is either written or reported to the watchers.
TEST_CASE("a fire-and-forget producer far faster than its connection drains is told of every "
          "publish not written",
          "[overload]") {
  nats_server srv{server_options{false, 0}};
  std::optional<service_fixture> f; // destroyed after the proxy: a blocked write fails at once
  throttle_proxy proxy{srv.port(), drain_rate};
  f.emplace(overload_settings(proxy.url()));
  REQUIRE(f->svc->get_connection());
  arrivals arrived{srv.url(), "over.ff"};
  auto base_kb = proc_status_kb("VmRSS");
  uint64_t told = 0;
  long peak_kb = 0;
  {
    rss_sampler rss;
    caf::scoped_actor self{f->sys};
    auto sup = caf::actor_cast<caf::actor>(f->svc->api());
    const std::string payload(payload_size, 'x');
    for (int i = 0; i < attempts; ++i)
      natsvisor::publish(self.ptr(), sup, outgoing{"over.ff", payload, {}});
    peak_kb = rss.peak_kb();
  }
  // Every publish is either written or reported to the watchers: wait until the two account for
  // all of them (the supervisor may still be working through its mailbox when the loop ends).
  auto accounted = [&] {
    told += told_dropped(*f);
    arrived.reached(attempts - std::min<uint64_t>(told, attempts));
    return told + arrived.got >= static_cast<uint64_t>(attempts);
  };
  bool all_accounted = eventually(accounted, 60s);
  // A publish both reported and written would arrive beyond the count: read on for a while (a
  // check that something does not come, not synchronisation).
  for (auto until = std::chrono::steady_clock::now() + 500ms;
       std::chrono::steady_clock::now() < until;)
    arrived.reached(attempts + 1);
  told += told_dropped(*f);
  auto st = f->status_of(proxy.url());
  REQUIRE(st);
  INFO("RSS grew by " << (peak_kb - base_kb) / 1024 << " MiB; told of " << told << " of "
                      << attempts << " publishes, " << arrived.got << " arrived; the URL's status: "
                      << caf::deep_to_string(*st));
  CHECK(all_accounted);
  CHECK(told > 0);
  CHECK(told < static_cast<uint64_t>(attempts));
  // Nothing was both reported and written, and the status counts what the watchers were told.
  CHECK(told + arrived.got == static_cast<uint64_t>(attempts));
  CHECK(st->publishes.dropped_total() == told);
}

TEST_CASE("a producer publishing through a publisher far faster than its connection drains is "
          "refused at once past the credit, memory stays bounded and every accepted publish "
          "arrives",
          "[overload]") {
  nats_server srv{server_options{false, 0}};
  std::optional<service_fixture> f;
  throttle_proxy proxy{srv.port(), drain_rate};
  f.emplace(overload_settings(proxy.url()));
  REQUIRE(f->svc->get_connection());
  arrivals arrived{srv.url(), "over.pub"};
  auto base_kb = proc_status_kb("VmRSS");
  uint64_t accepted = 0;
  uint64_t refused = 0;
  long peak_kb = 0;
  {
    rss_sampler rss;
    caf::scoped_actor self{f->sys};
    std::optional<publisher> pub;
    self->request(f->svc->api(), 5s, publisher_atom_v, std::string{})
      .receive([&](publisher& p) { pub = std::move(p); },
               [](caf::error& err) { FAIL("publisher: " << describe(err)); });
    REQUIRE(pub);
    const std::string payload(payload_size, 'x');
    for (int i = 0; i < attempts; ++i) {
      if (natsvisor::publish(self.ptr(), *pub, outgoing{"over.pub", payload, {}}))
        ++accepted;
      else
        ++refused;
    }
    // An awaited publish past the bound is answered overloaded at once, through a publisher
    // and through the plain API alike (charged at the supervisor's door). The bound is taken by
    // hand, whole, so that what the connection takes meanwhile cannot make room.
    auto by_hand = pub->credit->limit();
    pub->credit->charge(by_hand);
    for (bool plain : {false, true}) {
      std::optional<caf::error> answer;
      auto t0 = std::chrono::steady_clock::now();
      auto on_ok = [&] { answer = caf::error{}; };
      auto on_err = [&](caf::error& err) { answer = err; };
      if (plain)
        natsvisor::request_publish(self.ptr(), f->svc->api(), outgoing{"over.pub", payload, {}})
          .receive(on_ok, on_err);
      else
        natsvisor::request_publish(self.ptr(), *pub, outgoing{"over.pub", payload, {}})
          .receive(on_ok, on_err);
      INFO((plain ? "plain" : "publisher"));
      CHECK(std::chrono::steady_clock::now() - t0 < 1s);
      REQUIRE(answer);
      CHECK(code_of(*answer) == errc::overloaded);
    }
    pub->credit->refund(by_hand);
    // Everything charged comes back once the connection took it.
    CHECK(eventually([&] { return pub->credit->used() == publish_cost{0, 0}; }, 20s));
    peak_kb = rss.peak_kb();
  }
  INFO("RSS grew by " << (peak_kb - base_kb) / 1024 << " MiB; accepted " << accepted
                      << ", refused " << refused);
  CHECK(refused > 0);
  CHECK(accepted > 0);
  CHECK(accepted + refused == static_cast<uint64_t>(attempts));
  if (rss_is_meaningful)
    CHECK(peak_kb - base_kb < growth_bound_kb);
  // Nothing accepted was lost: every accepted publish reaches the server.
  CHECK(eventually([&] { return arrived.reached(accepted); }, 30s));
  CHECK(arrived.got == accepted);
}

TEST_CASE("the credit comes back when the connection is lost with publishes on their way",
          "[overload]") {
  nats_server srv{server_options{false, 0}};
  std::optional<service_fixture> f;
  auto proxy = std::make_unique<throttle_proxy>(srv.port(), 1u << 20);
  f.emplace(overload_settings(proxy->url()));
  REQUIRE(f->svc->get_connection());
  caf::scoped_actor self{f->sys};
  std::optional<publisher> pub;
  self->request(f->svc->api(), 5s, publisher_atom_v, std::string{})
    .receive([&](publisher& p) { pub = std::move(p); },
             [](caf::error& err) { FAIL("publisher: " << describe(err)); });
  REQUIRE(pub);
  const std::string payload(payload_size, 'x');
  uint64_t accepted = 0;
  while (natsvisor::publish(self.ptr(), *pub, outgoing{"over.lost", payload, {}}))
    ++accepted;
  CHECK(accepted > 0);
  CHECK(pub->credit->used().messages > 0);
  proxy.reset(); // the link dies with publishes in nats.c, in the mailboxes and on their way
  // Whatever became of them (written, held, handed back, dropped with the connection actor's
  // end), nothing stays charged: the sender may publish again.
  CHECK(eventually([&] { return pub->credit->used() == publish_cost{0, 0}; }, 30s));
  CHECK(natsvisor::publish(self.ptr(), *pub, outgoing{"over.lost", payload, {}}));
}

// A publisher names the service, not the URL supervisor of the moment: one made before its URL
// was closed (and that URL's supervisor ended) still publishes on the URL opened again, and its
// credit is the one the new supervisor refunds.
TEST_CASE("a publisher outlives its URL's supervisor", "[overload][isolation]") {
  nats_server configured;
  nats_server srv;
  auto url = srv.url(); // not configured: its supervisor is made on demand and may end
  service_fixture f{fast_settings(configured.url())};
  arrivals got{srv.url(), "over.later"};
  caf::scoped_actor self{f.sys};
  std::optional<publisher> pub;
  self->request(f.svc->api(), 5s, publisher_atom_v, url)
    .receive([&](publisher& p) { pub = std::move(p); },
             [](caf::error& err) { FAIL("publisher: " << describe(err)); });
  REQUIRE(pub);
  auto awaited = [&](const char* payload) {
    caf::error result = make_error(errc::timeout, "no answer");
    request_publish(self.ptr(), *pub, outgoing{"over.later", payload, {}}, 10s)
      .receive([&] { result = caf::none; }, [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  REQUIRE_FALSE(awaited("first"));
  REQUIRE_FALSE(f.svc->close_connection(url));
  // Closed and idle: its supervisor ends and the URL leaves the status.
  REQUIRE(eventually([&] {
    auto report = f.svc->status();
    return report && std::none_of(report->begin(), report->end(), [&](const url_status& u) {
             return u.url == redact(url);
           });
  }, 10s));
  auto second = awaited("second");
  CHECK_FALSE(second);
  INFO(describe(second));
  CHECK(natsvisor::publish(self.ptr(), *pub, outgoing{"over.later", "third", {}}));
  CHECK(got.reached(3));
  CHECK(eventually([&] { return pub->credit->used() == publish_cost{0, 0}; }, 10s));
}

// The router kept one credit per URL ever named, for good: a program publishing to ever new URLs
// grew that table forever (and a publisher for the 10001st URL in use was granted like any).
TEST_CASE("the router keeps the publish credits of URLs in use only, up to a bound past which a "
          "new URL's publisher is refused with overloaded",
          "[overload][limits]") {
  nats_server srv;
  service_fixture f{fast_settings(srv.url())};
  REQUIRE(f.svc->get_connection()); // the default URL's supervisor holds its credit
  caf::scoped_actor self{f.sys};
  auto publisher_of = [&](int port) {
    caf::expected<publisher> out{caf::error{}};
    // Never connected: a publisher only names its URL.
    self->request(f.svc->api(), 5s, publisher_atom_v, "nats://127.0.0.1:" + std::to_string(port))
      .receive([&](publisher& p) { out = std::move(p); },
               [&](caf::error& err) { out = std::move(err); });
    return out;
  };
  std::vector<publisher> held;
  caf::error refused;
  for (int port = 20000; port < 20000 + static_cast<int>(max_url_credits) + 10; ++port) {
    auto p = publisher_of(port);
    if (!p) {
      refused = std::move(p.error());
      break;
    }
    held.push_back(std::move(*p));
  }
  INFO(held.size() << " publishers held; refused with " << describe(refused));
  CHECK(held.size() == max_url_credits - 1);
  CHECK(code_of(refused) == errc::overloaded);
  auto again = publisher_of(20000);
  REQUIRE(again);
  CHECK(held.front().credit == again->credit); // a URL in use keeps its credit
  held.clear();
  // Let go: their credits are forgotten for new URLs, as many again.
  for (int port = 40000; port < 40000 + static_cast<int>(max_url_credits); ++port) {
    auto p = publisher_of(port);
    REQUIRE(p);
  }
}

// Refused fire-and-forget publishes are logged once a second per URL, not once each: an overload
// refuses thousands a second, and a warning per publish would flood the log (and slow the
// supervisor that writes it) just when it is busiest.
TEST_CASE("a fire-and-forget overload of ten times the credit logs a few warnings, not one per "
          "refused publish",
          "[overload]") {
  log_capture capture; // outlives the service: no actor logs while its sink is removed
  server_options plain;
  plain.jetstream = false;
  nats_server srv{plain};
  auto s = overload_settings("");
  s.publish_credit_messages = 100;
  std::optional<service_fixture> f; // destroyed after the proxy: a blocked write fails at once
  throttle_proxy proxy{srv.port(), 64u << 10}; // the connection actor blocks on it for minutes
  s.nats_url = proxy.url();
  f.emplace(s);
  REQUIRE(f->svc->get_connection());
  caf::scoped_actor self{f->sys};
  auto sup = caf::actor_cast<caf::actor>(f->svc->api());
  std::shared_ptr<publish_credit> credit; // the URL's, shared with its publishers
  self->request(sup, 5s, publisher_atom_v, std::string{})
    .receive([&](publisher& p) { credit = p.credit; },
             [](caf::error& err) { FAIL("publisher: " << describe(err)); });
  REQUIRE(credit);
  auto start = std::chrono::steady_clock::now();
  const std::string payload(1024, 'x');
  // The first round fills the loopback buffers until the connection actor blocks; from then on
  // nearly every publish is refused. Rounds 200 ms apart: the overload lasts about 2 s.
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 5000; ++i)
      natsvisor::publish(self.ptr(), sup, outgoing{"over.logged", payload, {}});
    self->receive(caf::after(200ms) >> [] {}); // a schedule, not synchronisation
  }
  // Every publish sent was taken by the supervisor once a request sent after them is answered.
  REQUIRE(f->svc->status());
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto refused = credit->refused();
  auto warnings = count_lines(capture.sink->text(), "fire-and-forget publishes refused");
  INFO(refused << " publishes refused in " << seconds << " s, " << warnings << " warnings");
  REQUIRE(refused >= 10 * 100); // ten times the credit, at least
  CHECK(warnings >= 1);
  CHECK(warnings <= static_cast<size_t>(seconds) + 2);
}
