// A 3-node JetStream cluster (tests/support/nats_cluster.hpp): failover when the node natsvisor
// uses dies, and JetStream publishes while a stream elects a new leader.

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <set>

#include "nats_cluster.hpp"
#include "service_fixture.hpp"

#include "config/url.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

/// A plain nats.c connection for the test's own view of the cluster (never natsvisor's).
struct raw_connection {
  explicit raw_connection(const std::string& url, const char* name = "test-raw") {
    natsOptions* opts = nullptr;
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    std::vector<std::string> servers;
    for (size_t from = 0; from <= url.size();) {
      auto comma = std::min(url.find(',', from), url.size());
      servers.push_back(url.substr(from, comma - from));
      from = comma + 1;
    }
    std::vector<const char*> raw;
    for (auto& sv : servers)
      raw.push_back(sv.c_str());
    REQUIRE(natsOptions_SetServers(opts, raw.data(), static_cast<int>(raw.size())) == NATS_OK);
    natsOptions_SetNoRandomize(opts, true);
    natsOptions_SetName(opts, name);
    natsOptions_SetMaxReconnect(opts, 100);
    natsOptions_SetReconnectWait(opts, 100);
    natsOptions_SetTimeout(opts, 2000);
    auto s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    INFO(natsStatus_GetText(s) << ": " << nats_GetLastError(nullptr));
    REQUIRE(s == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  }
  ~raw_connection() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
};

/// A file-backed stream replicated on all three nodes.
void add_r3_stream(jsCtx* js, const char* name, const char* subject) {
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = name;
  const char* subjects[] = {subject};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = 3;
  jsStreamInfo* si = nullptr;
  REQUIRE(js_AddStream(&si, js, &sc, nullptr, nullptr) == NATS_OK);
  jsStreamInfo_Destroy(si);
}

/// The stream's leader as the cluster reports it ("" while it has none).
std::string stream_leader(jsCtx* js, const char* stream) {
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js, stream, nullptr, nullptr) != NATS_OK)
    return {};
  std::string leader = si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "";
  jsStreamInfo_Destroy(si);
  return leader;
}

/// Every stored message's payload with how often it is stored, read by sequence.
std::map<std::string, int> stored_payloads(jsCtx* js, const char* stream) {
  std::map<std::string, int> out;
  jsStreamInfo* si = nullptr;
  REQUIRE(js_GetStreamInfo(&si, js, stream, nullptr, nullptr) == NATS_OK);
  auto first = si->State.FirstSeq;
  auto last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  for (auto seq = first; seq <= last && seq > 0; ++seq) {
    natsMsg* m = nullptr;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 5000;
    REQUIRE(js_GetMsg(&m, js, stream, seq, &o, nullptr) == NATS_OK);
    ++out[std::string(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)))];
    natsMsg_Destroy(m);
  }
  return out;
}

/// The node that serves natsvisor's shared connection (named "<app_name>/shared/<generation>").
std::optional<size_t> natsvisor_node(nats_cluster& c, service_fixture& f) {
  auto st = f.status_of(redact(f.svc->config().nats_url));
  if (!st)
    return std::nullopt;
  return c.node_of_client("natsvisor/shared/" + std::to_string(st->generation));
}

/// Paces a publishing loop at a steady rate. Not synchronisation: waiting for nothing, with a
/// deadline, through the actor system's own timeout.
void pace(caf::scoped_actor& self, std::chrono::milliseconds period) {
  self->receive([](caf::message&) {}, caf::after(period) >> [] {});
}

struct publish_record {
  std::map<errc, int> errors; ///< by code, before the message was finally acknowledged
  std::set<std::string> acked;
  int published = 0;
};

} // namespace

TEST_CASE("killing the node natsvisor uses fails over with subscriptions and without losing or "
          "duplicating an acknowledged JetStream message",
          "[cluster][jetstream][faults]") {
  nats_cluster c;
  auto s = fast_settings(c.url());
  s.request_timeout = 10s;
  s.nats.max_reconnect = 20;
  service_fixture f{s};
  {
    auto js = f.svc->get_jetstream();
    REQUIRE(js);
    add_r3_stream(js->get(), "ORDERS", "orders.>");
  }
  caf::scoped_actor sub{f.sys};
  REQUIRE(f.svc->subscribe("probe.>", sub));
  auto before = natsvisor_node(c, f);
  REQUIRE(before);

  // Publishes at a steady rate; a publish that fails is retried with the same Nats-Msg-Id until
  // it is acknowledged, as an application would, so the stream must hold each message once.
  std::atomic<bool> stop{false};
  std::atomic<int> acked_count{0};
  auto publisher = std::async(std::launch::async, [&] {
    publish_record r;
    caf::scoped_actor self{f.sys};
    auto give_up_at = clock_type::now() + 60s;
    for (int i = 0; !stop && clock_type::now() < give_up_at; ++i) {
      auto id = "order-" + std::to_string(i);
      ++r.published;
      for (;;) {
        auto ack = f.svc->js_publish(outgoing{"orders.new", id, {{"Nats-Msg-Id", id}}}, 3s);
        if (ack) {
          r.acked.insert(id);
          ++acked_count;
          break;
        }
        ++r.errors[code_of(ack.error())];
        if (clock_type::now() > give_up_at)
          return r;
      }
      pace(self, 5ms);
    }
    return r;
  });
  REQUIRE(eventually([&] { return acked_count >= 100; }, 20s));
  c.kill(*before);
  auto killed_at = clock_type::now();
  // Failover: natsvisor's connection shows up on another node.
  std::optional<size_t> after;
  REQUIRE(eventually(
    [&] {
      after = natsvisor_node(c, f);
      return after && *after != *before;
    },
    15s));
  auto failover = clock_type::now() - killed_at;
  int acked_at_failover = acked_count;
  REQUIRE(eventually([&] { return acked_count >= acked_at_failover + 100; }, 30s));
  stop = true;
  auto r = publisher.get();

  // The message path's subscription is back: a message published now reaches the subscriber.
  REQUIRE_FALSE(f.svc->publish(outgoing{"probe.after", "x", {}}));
  std::optional<std::string> got;
  sub->receive([&](nats_message& m) { got = m.subject; },
               caf::after(std::chrono::seconds(5)) >> [] {});
  CHECK(got == std::string{"probe.after"});

  raw_connection raw{c.url()};
  auto stored = stored_payloads(raw.js, "ORDERS");
  int duplicates = 0;
  for (auto& [payload, n] : stored)
    duplicates += n - 1;
  int missing = 0;
  for (auto& id : r.acked)
    missing += stored.count(id) == 0;
  std::string errors;
  for (auto& [code, n] : r.errors)
    errors += std::string{to_string(code)} + "=" + std::to_string(n) + " ";
  WARN("failover after " << std::chrono::duration_cast<std::chrono::milliseconds>(failover).count()
                         << " ms; published " << r.published << ", acknowledged " << r.acked.size()
                         << ", stored " << stored.size() << ", duplicates " << duplicates
                         << "; errors before an ack: " << errors);
  CHECK(missing == 0);
  CHECK(duplicates == 0);
  CHECK(r.acked.size() == static_cast<size_t>(r.published));
  CHECK(stored.size() == r.acked.size());
}

TEST_CASE("JetStream publishes while the stream elects a new leader are retried or unavailable "
          "and never no_stream",
          "[cluster][jetstream][faults]") {
  nats_cluster c;
  std::string leader;
  {
    raw_connection raw{c.url()};
    add_r3_stream(raw.js, "ELECT", "elect.>");
    REQUIRE(eventually([&] { return !(leader = stream_leader(raw.js, "ELECT")).empty(); }));
  }
  auto leader_index = c.index_of(leader);
  REQUIRE(leader_index);
  // natsvisor uses the other two nodes, so that only the stream loses its leader.
  std::string url;
  for (size_t i = 0; i < c.size(); ++i)
    if (i != *leader_index)
      url += (url.empty() ? "" : ",") + c.node(i).url();
  service_fixture f{fast_settings(url)};
  REQUIRE(f.svc->js_publish(outgoing{"elect.warmup", "w", {}}));

  struct result {
    clock_type::time_point at;
    errc code; ///< none: acknowledged
  };
  std::vector<result> results;
  caf::scoped_actor self{f.sys};
  auto publish_one = [&](int i) {
    auto id = "e-" + std::to_string(i);
    auto ack = f.svc->js_publish(outgoing{"elect.x", id, {{"Nats-Msg-Id", id}}}, 2s);
    results.push_back({clock_type::now(), ack ? errc::none : code_of(ack.error())});
  };
  int i = 0;
  for (; i < 20; ++i)
    publish_one(i);
  c.kill(*leader_index);
  auto killed_at = clock_type::now();
  // Until 20 acknowledgements in a row after the kill (a new leader), or 30 s.
  int in_a_row = 0;
  while (in_a_row < 20 && clock_type::now() - killed_at < 30s) {
    publish_one(i++);
    in_a_row = results.back().code == errc::none ? in_a_row + 1 : 0;
    pace(self, 10ms);
  }
  std::map<errc, int> counts;
  std::map<errc, clock_type::duration> last_seen;
  for (auto& r : results) {
    ++counts[r.code];
    if (r.at > killed_at)
      last_seen[r.code] = r.at - killed_at;
  }
  std::string summary;
  for (auto& [code, n] : counts)
    summary += std::string{code == errc::none ? "acknowledged" : to_string(code)} + "="
               + std::to_string(n) + " (last "
               + std::to_string(
                 std::chrono::duration_cast<std::chrono::milliseconds>(last_seen[code]).count())
               + " ms after the kill) ";
  WARN("stream leader " << leader << " killed: " << summary);
  CHECK(in_a_row >= 20);
  CHECK(counts.count(errc::no_stream) == 0);
  // A publish the dying leader took along is never answered: a timeout, transient too.
  for (auto& kv : counts) {
    INFO("code " << to_string(kv.first));
    CHECK((kv.first == errc::none || kv.first == errc::unavailable || kv.first == errc::timeout));
  }
}
