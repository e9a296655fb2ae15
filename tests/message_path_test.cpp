#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <set>

#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "actors/pull_consumer.hpp"
#include "api/requests.hpp"
#include "nats/protocol.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

outgoing msg(std::string subject, std::string payload, header_list headers = {}) {
  return outgoing{std::move(subject), std::move(payload), std::move(headers)};
}

// Receives the next nats_message in a scoped_actor's mailbox, or nothing by the deadline.
std::optional<nats_message> next_message(caf::scoped_actor& self, caf::timespan deadline = 5s) {
  std::optional<nats_message> got;
  self->receive([&](nats_message& m) { got = std::move(m); },
                caf::after(std::chrono::duration_cast<std::chrono::milliseconds>(deadline)) >>
                  [] { /* nop: nothing arrived */ });
  return got;
}

void add_stream(service_fixture& f, const char* name, const char* subject) {
  auto js = f.svc->get_jetstream();
  REQUIRE(js);
  REQUIRE(natsvisor::testing::add_stream(js->get(), name, subject) == NATS_OK);
}

uint64_t stream_messages(service_fixture& f, const char* name) {
  auto js = f.svc->get_jetstream();
  REQUIRE(js);
  jsStreamInfo* si = nullptr;
  REQUIRE(js_GetStreamInfo(&si, js->get(), name, nullptr, nullptr) == NATS_OK);
  auto n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

} // namespace

TEST_CASE("subjects are validated and JetStream acks are parsed", "[message][bad-input]") {
  CHECK(valid_subject("a.b.c", false));
  CHECK(valid_subject("a.*.c", true));
  CHECK(valid_subject("a.>", true));
  CHECK_FALSE(valid_subject("a.*", false));
  CHECK_FALSE(valid_subject("a.>.b", true));
  CHECK_FALSE(valid_subject("a..b", true));
  CHECK_FALSE(valid_subject("", true));
  CHECK_FALSE(valid_subject("a b", true));
  CHECK_FALSE(valid_subject("a.b.", true));
  CHECK_FALSE(valid_subject("a.b*", true));
  auto ack = parse_js_ack(R"({"stream":"ORDERS","seq":42})", "u");
  REQUIRE(ack);
  CHECK(ack->stream == "ORDERS");
  CHECK(ack->sequence == 42);
  CHECK_FALSE(ack->duplicate);
  auto dup = parse_js_ack(R"({"stream":"S", "seq": 7, "duplicate": true})", "u");
  REQUIRE(dup);
  CHECK(dup->duplicate);
  auto err = parse_js_ack(
    R"({"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}})", "u");
  REQUIRE_FALSE(err);
  CHECK(code_of(err.error()) == errc::jetstream_error);
  CHECK_THAT(detail_of(err.error()), Catch::Contains("maximum messages exceeded"));
  CHECK_FALSE(parse_js_ack("garbage", "u"));
}

TEST_CASE("a subscriber actor receives published messages with headers", "[message][subscribe]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  auto id = f.svc->subscribe("mp.>", sub);
  REQUIRE(id);
  REQUIRE_FALSE(f.svc->publish(msg("mp.one", "hello", {{"Trace", "t1"}})));
  auto got = next_message(sub);
  REQUIRE(got);
  CHECK(got->subject == "mp.one");
  CHECK(got->payload == "hello");
  CHECK(got->subscription == *id);
  REQUIRE(got->headers.size() == 1);
  CHECK(got->headers[0] == std::make_pair(std::string{"Trace"}, std::string{"t1"}));
  // Binary payloads travel intact.
  std::string binary{"a\0b\xff", 4};
  REQUIRE_FALSE(f.svc->publish(msg("mp.bin", binary)));
  auto bin = next_message(sub);
  REQUIRE(bin);
  CHECK(bin->payload == binary);
  auto st = f.status_of(server.url());
  REQUIRE(st);
  CHECK(st->subscriptions == 1);
}

TEST_CASE("a batch is published with one round trip", "[message]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  REQUIRE(f.svc->subscribe("batch.x", sub));
  std::vector<outgoing> batch;
  for (int i = 0; i < 500; ++i)
    batch.push_back(msg("batch.x", std::to_string(i)));
  auto n = f.svc->publish_batch(batch);
  REQUIRE(n);
  CHECK(*n == 500);
  int received = 0;
  bool in_order = true;
  for (; received < 500; ++received) {
    auto m = next_message(sub);
    if (!m)
      break;
    in_order = in_order && m->payload == std::to_string(received);
  }
  CHECK(received == 500);
  CHECK(in_order);
  // The packed form: one subject, payloads back to back.
  packed_batch packed;
  packed.subject = "batch.x";
  for (int i = 0; i < 300; ++i)
    packed.add("p" + std::to_string(i));
  auto m = f.svc->publish_batch(packed);
  REQUIRE(m);
  CHECK(*m == 300);
  for (int i = 0; i < 300; ++i) {
    auto got = next_message(sub);
    REQUIRE(got);
    CHECK(got->payload == "p" + std::to_string(i));
  }
  packed.subject = "bad subject";
  auto bad = f.svc->publish_batch(packed);
  REQUIRE_FALSE(bad);
  CHECK(code_of(bad.error()) == errc::invalid_subject);
}

TEST_CASE("request and reply through the message path", "[message]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto svc = f.svc->api();
  // A responder service actor: answers every request on svc.echo with "pong:<payload>".
  auto responder = f.sys.spawn([svc](caf::event_based_actor* self) -> caf::behavior {
    return {[self, svc](const nats_message& m) {
      publish(self, svc, outgoing{m.reply, "pong:" + m.payload, {}});
    }};
  });
  REQUIRE(f.svc->subscribe("svc.echo", responder));
  SECTION("a reply comes back as the response") {
    auto reply = f.svc->request(msg("svc.echo", "ping"), 2s);
    REQUIRE(reply);
    CHECK(reply->payload == "pong:ping");
  }
  SECTION("100 concurrent requesting actors all get their own reply") {
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    for (int i = 0; i < 100; ++i)
      f.sys.spawn([&, svc, i](caf::event_based_actor* self) {
        request_reply(self, svc, outgoing{"svc.echo", std::to_string(i), {}}, 5s)
          .then(
            [&, i](const nats_message& m) {
              if (m.payload == "pong:" + std::to_string(i))
                ++ok;
              else
                ++failed;
            },
            [&](caf::error&) { ++failed; });
      });
    REQUIRE(eventually([&] { return ok.load() + failed.load() == 100; }));
    CHECK(ok.load() == 100);
  }
  SECTION("no responders and timeouts are typed errors") {
    auto none = f.svc->request(msg("nobody.home", "x"), 2s);
    REQUIRE_FALSE(none);
    CHECK(code_of(none.error()) == errc::no_responders);
    caf::scoped_actor silent{f.sys};
    REQUIRE(f.svc->subscribe("svc.silent", silent));
    auto start = std::chrono::steady_clock::now();
    auto late = f.svc->request(msg("svc.silent", "x"), 300ms);
    REQUIRE_FALSE(late);
    CHECK(code_of(late.error()) == errc::timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  }
  SECTION("more requests awaiting replies than reply slots all get their own reply") {
    // 1,024 reply slots per connection: the others take the way through the connection actor.
    const int n = 1500;
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    f.sys.spawn([&, svc](caf::event_based_actor* self) {
      for (int i = 0; i < n; ++i)
        request_reply(self, svc, outgoing{"svc.echo", std::to_string(i), {}}, 20s)
          .then(
            [&, i](const nats_message& m) {
              if (m.payload == "pong:" + std::to_string(i))
                ++ok;
              else
                ++failed;
            },
            [&](caf::error&) { ++failed; });
    });
    REQUIRE(eventually([&] { return ok.load() + failed.load() == n; }, 30s));
    CHECK(ok.load() == n);
  }
  SECTION("a reply after its deadline reaches nobody, not the next request in its slot") {
    caf::scoped_actor slow{f.sys};
    REQUIRE(f.svc->subscribe("svc.slow", slow));
    auto late = f.svc->request(msg("svc.slow", "first"), 200ms);
    REQUIRE_FALSE(late);
    CHECK(code_of(late.error()) == errc::timeout);
    std::string first_reply, second_reply;
    slow->receive([&](const nats_message& m) { first_reply = m.reply; },
                  caf::after(5s) >> [] { FAIL("the first request never arrived"); });
    // The next request reuses the timed-out request's reply slot while the late reply comes.
    auto answer = std::make_shared<std::promise<std::string>>();
    f.sys.spawn([svc, answer](caf::event_based_actor* self) {
      request_reply(self, svc, outgoing{"svc.slow", "second", {}}, 5s)
        .then([answer](const nats_message& m) { answer->set_value(m.payload); },
              [answer](caf::error& err) { answer->set_value("error: " + describe(err)); });
    });
    slow->receive([&](const nats_message& m) { second_reply = m.reply; },
                  caf::after(5s) >> [] { FAIL("the second request never arrived"); });
    REQUIRE_FALSE(f.svc->publish(msg(first_reply, "late")));
    REQUIRE_FALSE(f.svc->publish(msg(second_reply, "answer")));
    auto got = answer->get_future();
    REQUIRE(got.wait_for(5s) == std::future_status::ready);
    CHECK(got.get() == "answer");
  }
  caf::anon_send_exit(responder, caf::exit_reason::user_shutdown);
}

TEST_CASE("unsubscribe and a dead subscriber end the subscription", "[message][subscribe]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  auto id = f.svc->subscribe("gone.x", sub);
  REQUIRE(id);
  f.svc->unsubscribe(*id);
  REQUIRE(eventually([&] { return f.status_of(server.url())->subscriptions == 0; }));
  REQUIRE_FALSE(f.svc->publish(msg("gone.x", "after unsubscribe")));
  CHECK_FALSE(next_message(sub, 300ms));
  {
    caf::scoped_actor mortal{f.sys};
    REQUIRE(f.svc->subscribe("gone.y", mortal));
    CHECK(f.status_of(server.url())->subscriptions == 1);
  } // the subscriber dies here
  CHECK(eventually([&] { return f.status_of(server.url())->subscriptions == 0; }));
  // The server sees the UNSUB: a request on the subject now finds no responder.
  CHECK(eventually([&] {
    auto r = f.svc->request(msg("gone.y", "x"), 200ms);
    return !r && code_of(r.error()) == errc::no_responders;
  }));
}

TEST_CASE("bad subjects and oversized payloads are typed errors", "[message][bad-input][regression]") {
  server_options opts;
  opts.max_payload = 1024;
  nats_server server{opts};
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  for (auto bad : {"", "a..b", "has space", "wild.*", "wild.>"}) {
    INFO("subject: " << bad);
    auto err = f.svc->publish(msg(bad, "x"));
    CHECK(code_of(err) == errc::invalid_subject);
  }
  auto bad_sub = f.svc->subscribe("a.>.b", sub);
  REQUIRE_FALSE(bad_sub);
  CHECK(code_of(bad_sub.error()) == errc::invalid_subject);
  REQUIRE(f.svc->get_connection()); // connected: the server's max_payload is known
  auto big = f.svc->publish(msg("big.x", std::string(2048, 'x')));
  CHECK(code_of(big) == errc::payload_too_large);
  // Nothing of the refused batch goes out: a subscriber in place before it (subscribe answers
  // once the server has the SUB) sees a marker published after it as its first message.
  caf::scoped_actor ok{f.sys};
  REQUIRE(f.svc->subscribe("ok.x", ok));
  std::vector<outgoing> batch{msg("ok.x", "1"), msg("bad subject", "2")};
  auto b = f.svc->publish_batch(batch);
  REQUIRE_FALSE(b);
  CHECK(code_of(b.error()) == errc::invalid_subject);
  REQUIRE_FALSE(f.svc->publish(msg("ok.x", "marker")));
  auto first = next_message(ok);
  REQUIRE(first);
  CHECK(first->payload == "marker");
}

TEST_CASE("a subscription made before a supervisor restart receives messages after it",
          "[message][subscribe][faults]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.request_timeout = 10s;
  service_fixture f{s};
  caf::scoped_actor sub{f.sys};
  REQUIRE(f.svc->subscribe("durable.>", sub));
  REQUIRE_FALSE(f.svc->publish(msg("durable.before", "1")));
  REQUIRE(next_message(sub));
  server.kill();
  REQUIRE(f.await_state(connection_state::restarting));
  server.start();
  auto up = f.await_state(connection_state::connected);
  REQUIRE(up);
  CHECK(up->generation >= 2);
  // The new connection re-subscribed by itself; the subscriber did nothing.
  auto got = std::optional<nats_message>{};
  REQUIRE(eventually([&] {
    if (f.svc->publish(msg("durable.after", "2")))
      return false;
    got = next_message(sub, 100ms);
    return got.has_value();
  }));
  CHECK(got->subject == "durable.after");
}

TEST_CASE("js_publish returns the acknowledgement and every acknowledged message survives a "
          "server restart",
          "[message][jetstream][faults]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.request_timeout = 10s;
  service_fixture f{s};
  add_stream(f, "EVENTS", "events.>");
  std::set<uint64_t> acked;
  for (int i = 0; i < 50; ++i) {
    auto ack = f.svc->js_publish(msg("events.a", std::to_string(i)));
    REQUIRE(ack);
    CHECK(ack->stream == "EVENTS");
    acked.insert(ack->sequence);
  }
  server.kill();
  server.start();
  REQUIRE(eventually([&] {
    auto h = f.svc->health_check();
    return h && h->healthy;
  }));
  for (int i = 50; i < 100; ++i) {
    auto ack = f.svc->js_publish(msg("events.b", std::to_string(i)));
    REQUIRE(ack);
    acked.insert(ack->sequence);
  }
  CHECK(acked.size() == 100);
  CHECK(*acked.begin() == 1);
  CHECK(*acked.rbegin() == 100);
  CHECK(stream_messages(f, "EVENTS") == 100);
  auto none = f.svc->js_publish(msg("nostream.x", "1"), 1s);
  REQUIRE_FALSE(none);
  CHECK(code_of(none.error()) == errc::no_stream);
}

TEST_CASE("a pull consumer delivers batches and re-ensures its durable consumer after a "
          "restart",
          "[message][jetstream][faults]") {
  nats_server server;
  auto s = fast_settings(server.url());
  s.request_timeout = 10s;
  service_fixture f{s};
  add_stream(f, "JOBS", "jobs.>");
  std::mutex mx;
  std::set<std::string> seen;
  auto target = f.sys.spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](const std::vector<nats_message>& batch) {
      std::lock_guard<std::mutex> guard{mx};
      for (auto& m : batch)
        seen.insert(m.payload);
    }};
  });
  auto count = [&] {
    std::lock_guard<std::mutex> guard{mx};
    return seen.size();
  };
  for (int i = 0; i < 20; ++i)
    REQUIRE(f.svc->js_publish(msg("jobs.x", "job" + std::to_string(i))));
  pull_consumer_config pc;
  pc.stream = "JOBS";
  pc.durable = "workers";
  pc.filter_subject = "jobs.>";
  pc.batch = 8;
  pc.fetch_wait = 200ms;
  auto consumer = spawn_pull_consumer(f.sys, f.svc->actor(), target, pc);
  REQUIRE(eventually([&] { return count() == 20; }));
  server.kill();
  REQUIRE(f.await_state(connection_state::restarting));
  server.start();
  REQUIRE(f.await_state(connection_state::connected));
  for (int i = 20; i < 30; ++i)
    REQUIRE(f.svc->js_publish(msg("jobs.x", "job" + std::to_string(i))));
  CHECK(eventually([&] { return count() == 30; }, 15s));
  caf::anon_send_exit(consumer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_CASE("closing a connection answers requests in flight with connection_closed",
          "[message][bad-input]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor silent{f.sys};
  REQUIRE(f.svc->subscribe("svc.silent", silent));
  auto pending
    = std::async(std::launch::async, [&] { return f.svc->request(msg("svc.silent", "x"), 10s); });
  // The request is out once the silent subscriber got it.
  REQUIRE(next_message(silent));
  auto start = std::chrono::steady_clock::now();
  REQUIRE_FALSE(f.svc->close_connection());
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::connection_closed);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("an invalid queue group is refused and leaves no subscription",
          "[message][subscribe][bad-input]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor sub{f.sys};
  auto r = f.svc->subscribe("q.x", sub, "bad queue");
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::invalid_subject);
  REQUIRE(f.svc->get_connection());
  CHECK(f.status_of(server.url())->subscriptions == 0);
}

TEST_CASE("a JetStream publish to a server without JetStream is jetstream_unavailable at once",
          "[message][jetstream][bad-input]") {
  server_options opts;
  opts.jetstream = false;
  nats_server server{opts};
  service_fixture f{fast_settings(server.url())};
  REQUIRE(f.svc->get_connection());
  auto start = std::chrono::steady_clock::now();
  auto r = f.svc->js_publish(msg("events.a", "1"), 5s);
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::jetstream_unavailable);
  // Not retried as if a stream elected a leader: JetStream's absence is known.
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}
