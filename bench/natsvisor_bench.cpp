// natsvisor_bench: measures what natsvisor costs and saves against raw nats.c, on real
// nats-server processes it starts itself on free loopback ports (tests/support/nats_server).
//
//   natsvisor_bench [--quick] [--out FILE.json] [--timeline FILE.dat] [--git-commit SHA]
//
// Every figure is the median of at least 5 repetitions; compared variants alternate inside one
// repetition loop (A, B, A, B, ...) so that drift hits all of them; every ratio divides two
// medians measured in the same run. See bench/README.md for what each figure means.

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <malloc.h>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "api/connection_service.hpp"
#include "api/requests.hpp"
#include "config/settings.hpp"
#include "nats/type_ids.hpp"
#include "nats_server.hpp"
#include "process_stats.hpp"
#include "throttle_proxy.hpp"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using natsvisor::testing::nats_server;
using natsvisor::testing::server_options;

// --- small helpers ---------------------------------------------------------------------------

double secs(clk::duration d) {
  return std::chrono::duration<double>(d).count();
}

double ms_of(clk::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

// Nearest-rank percentile.
double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}


// Fails the whole run at once (also from actor threads); the servers die with the process
// (PR_SET_PDEATHSIG).
[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "natsvisor_bench: FAILED: %s\n", what.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(2);
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK)
    die(std::string{what} + ": " + natsStatus_GetText(s));
}

natsConnection* raw_connect(const std::string& url, bool send_asap = false) {
  natsOptions* o = nullptr;
  check(natsOptions_Create(&o), "natsOptions_Create");
  check(natsOptions_SetURL(o, url.c_str()), "natsOptions_SetURL");
  if (send_asap)
    check(natsOptions_SetSendAsap(o, true), "natsOptions_SetSendAsap");
  natsConnection* nc = nullptr;
  check(natsConnection_Connect(&nc, o), "natsConnection_Connect");
  natsOptions_Destroy(o);
  return nc;
}

// --- results -----------------------------------------------------------------------------------

struct row {
  std::string name;
  double value;
  std::string unit;
  std::string target; // empty: no target
  int pass = -1;      // -1 none, 0 miss, 1 pass
};

struct results {
  std::vector<row> rows;
  std::map<std::string, double> numbers; // dotted name -> value
  std::vector<std::string> notes;

  void put(const std::string& name, double v, const std::string& unit = {}) {
    numbers[name] = v;
    rows.push_back({name, v, unit, {}, -1});
  }
  void target(const std::string& name, double v, const std::string& unit, bool ok,
              const std::string& text) {
    numbers[name] = v;
    rows.push_back({name, v, unit, text, ok ? 1 : 0});
  }
};

std::string fmt_num(double v) {
  char buf[64];
  if (std::isnan(v))
    return "n/a";
  if (std::fabs(v) >= 1e5)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (std::fabs(v) >= 100)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string json_num(double v) {
  if (!std::isfinite(v))
    return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) {
        auto s = line.substr(pos + 1);
        s.erase(0, s.find_first_not_of(' '));
        return s;
      }
    }
  return "unknown";
}

std::string utc_now() {
  char buf[64];
  std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// --- options -----------------------------------------------------------------------------------

struct options {
  bool quick = false;
  std::string out = "bench/results/latest.json";
  std::string timeline = "bench/results/recovery.dat";
  std::string git_commit = "unknown";
  std::string only; // run one section only: getconn, publish, request, recovery, scale, subs,
                    // overload, isolation
  int caf_threads = 0; // 0: CAF's default scheduler size (an experiment knob, not a tuning)
  std::vector<std::string> caf_args; // CAF scheduler options (--scheduler.*, --work-stealing.*)
};

// Base settings for every service the bench creates.
natsvisor::settings base_settings(const std::string& url) {
  natsvisor::settings s;
  s.nats_url = url;
  s.log_level = "error";
  s.connection_timeout = 2s;
  s.request_timeout = 10s;
  s.health_timeout = 2s;
  s.lease_timeout = 10s;
  return s;
}

// Runs `body(self, done)` in a fresh event-based actor; `done(value)` ends it and returns the
// value to the blocking caller.
double
run_in_actor(caf::actor_system& sys,
             std::function<void(caf::event_based_actor*, std::function<void(double)>)> body) {
  auto prom = std::make_shared<std::promise<double>>();
  auto fut = prom->get_future();
  sys.spawn([body, prom](caf::event_based_actor* self) -> caf::behavior {
    auto fired = std::make_shared<bool>(false);
    body(self, [self, prom, fired](double v) {
      if (*fired)
        return;
      *fired = true;
      prom->set_value(v);
      self->quit();
    });
    return {[](int32_t) { /* nop: keeps the actor alive while responses are pending */ }};
  });
  if (fut.wait_for(300s) != std::future_status::ready)
    die("an actor benchmark did not finish within 300 s");
  return fut.get();
}

// Runs the variants alternately, `reps` rounds; round r starts with variant r % n, so that no
// variant always runs right after the same other one (e.g. while CAF's workers still poll
// after an actor benchmark). Returns each variant's samples.
std::vector<std::vector<double>> alternate(int reps,
                                           const std::vector<std::function<double()>>& vs) {
  std::vector<std::vector<double>> out(vs.size());
  for (int r = 0; r < reps; ++r)
    for (size_t k = 0; k < vs.size(); ++k) {
      auto i = (static_cast<size_t>(r) + k) % vs.size();
      out[i].push_back(vs[i]());
    }
  return out;
}

// A self-referencing loop step, kept alive by the closures that call it.
using step_fn = std::function<void()>;

// ================================================================================================
// 1. Getting a usable connection
// ================================================================================================

void bench_get_connection(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[1/5] getting a usable connection\n");
  std::fflush(stdout);
  nats_server srv{server_options{false, 0}};
  auto url = srv.url();
  auto cfg = base_settings(url);
  cfg.connection_pool_size = 2;
  natsvisor::connection_service svc{sys, cfg};
  auto sup = svc.api();
  const int reps = opt.quick ? 7 : 9;
  const int n_connect = opt.quick ? 40 : 150;
  const int n_ping = opt.quick ? 2000 : 8000;
  const int n_cached = opt.quick ? 50000 : 200000;
  const int n_lease = opt.quick ? 5000 : 20000;
  const int depth = 64;

  // Warm up: the shared connection and one pooled connection exist before timing.
  if (!svc.get_connection())
    die("get_connection failed at warm-up");
  {
    auto l = svc.lease();
    if (!l)
      die("lease failed at warm-up: " + natsvisor::describe(l.error()));
  }
  natsConnection* cached = raw_connect(url);

  auto connect_per_call = [&] {
    auto t0 = clk::now();
    for (int i = 0; i < n_connect; ++i) {
      natsConnection* nc = nullptr;
      check(natsConnection_ConnectTo(&nc, url.c_str()), "connect per call");
      check(natsConnection_PublishString(nc, "bench.getconn", "x"), "publish");
      check(natsConnection_Flush(nc), "flush");
      natsConnection_Destroy(nc);
    }
    return n_connect / secs(clk::now() - t0);
  };
  auto ping_validated = [&] {
    auto t0 = clk::now();
    for (int i = 0; i < n_ping; ++i)
      check(natsConnection_FlushTimeout(cached, 1000), "ping validation");
    return n_ping / secs(clk::now() - t0);
  };
  auto cached_get = [&](int in_flight) {
    return run_in_actor(sys, [&, in_flight](caf::event_based_actor* self, auto done) {
      auto t0 = std::make_shared<clk::time_point>(clk::now());
      auto sent = std::make_shared<int>(0);
      auto got = std::make_shared<int>(0);
      auto step = std::make_shared<step_fn>();
      *step = [=] {
        ++*sent;
        natsvisor::request_connection(self, sup).then(
          [=](natsvisor::connection_handle& h) {
            if (!h)
              die("empty connection handle");
            if (++*got == n_cached) {
              done(n_cached / secs(clk::now() - *t0));
              *step = nullptr;
            } else if (*sent < n_cached) {
              (*step)();
            }
          },
          [=](caf::error& err) { die("request_connection: " + natsvisor::describe(err)); });
      };
      for (int i = 0; i < in_flight && i < n_cached; ++i)
        (*step)();
    });
  };
  auto lease_cycle = [&] {
    return run_in_actor(sys, [&](caf::event_based_actor* self, auto done) {
      auto t0 = std::make_shared<clk::time_point>(clk::now());
      auto got = std::make_shared<int>(0);
      auto step = std::make_shared<step_fn>();
      *step = [=] {
        natsvisor::request_lease(self, sup).then(
          [=](natsvisor::lease& l) {
            // Take the loan out of the message, so returning it does not wait for the message
            // to be destroyed after this handler.
            natsvisor::lease mine = std::move(l);
            if (!mine)
              die("empty lease");
            mine.release();
            if (++*got == n_lease) {
              done(n_lease / secs(clk::now() - *t0));
              *step = nullptr;
            } else {
              (*step)();
            }
          },
          [=](caf::error& err) { die("request_lease: " + natsvisor::describe(err)); });
      };
      (*step)();
    });
  };

  auto runs = alternate(reps, {connect_per_call, ping_validated, [&] { return cached_get(depth); },
                               [&] { return cached_get(1); }, lease_cycle});
  auto &a = runs[0], &b = runs[1], &c = runs[2], &cs = runs[3], &d = runs[4];
  natsConnection_Destroy(cached);
  auto ma = median(a), mb = median(b), mc = median(c), mcs = median(cs), md = median(d);
  res.put("get_connection.connect_per_call_ops", ma, "ops/s");
  res.put("get_connection.ping_validated_ops", mb, "ops/s");
  res.put("get_connection.cached_ops", mc, "ops/s");
  res.put("get_connection.cached_sequential_ops", mcs, "ops/s");
  res.put("get_connection.lease_ops", md, "ops/s");
  res.numbers["get_connection.cached_in_flight"] = depth;
  res.target("get_connection.cached_vs_connect_per_call", mc / ma, "x", mc / ma >= 200.0,
             ">= 200x");
  res.target("get_connection.cached_vs_ping_validated", mc / mb, "x", mc / mb >= 20.0, ">= 20x");
  res.put("get_connection.cached_sequential_vs_ping_validated", mcs / mb, "x");
}

// ================================================================================================
// 2. Publish throughput
// ================================================================================================

void bench_publish(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[2/5] publish throughput\n");
  std::fflush(stdout);
  nats_server srv{server_options{false, 0}};
  auto url = srv.url();
  natsvisor::connection_service svc{sys, base_settings(url)};
  auto sup = svc.api();
  if (!svc.get_connection())
    die("get_connection failed at warm-up");
  natsConnection* raw = raw_connect(url);
  // Short, CPU-bound runs that compete with nats-server for 2 cores: more repetitions.
  const int reps = opt.quick ? 11 : 15;
  const int batch = 1000;
  const int pipeline = 4;

  struct size_case {
    const char* key;
    size_t bytes;
    int n;
  };
  std::vector<size_case> cases = {
    {"publish_16b", 16, opt.quick ? 2000000 : 4000000},
    {"publish_1kb", 1024, opt.quick ? 600000 : 1500000},
  };
  for (auto& sc : cases) {
    const std::string subject = "bench.pub";
    const std::string payload(sc.bytes, 'x');
    const int n = sc.n;
    auto raw_run = [&] {
      auto t0 = clk::now();
      for (int i = 0; i < n; ++i)
        check(natsConnection_Publish(raw, subject.c_str(), payload.data(),
                                     static_cast<int>(payload.size())),
              "raw publish");
      check(natsConnection_Flush(raw), "raw flush");
      return n / secs(clk::now() - t0);
    };
    auto handle_run = [&] {
      auto t0 = clk::now();
      auto h = svc.get_connection();
      if (!h)
        die("get_connection: " + natsvisor::describe(h.error()));
      auto* nc = h->get();
      for (int i = 0; i < n; ++i)
        check(natsConnection_Publish(nc, subject.c_str(), payload.data(),
                                     static_cast<int>(payload.size())),
              "handle publish");
      check(natsConnection_Flush(nc), "handle flush");
      return n / secs(clk::now() - t0);
    };
    // packed: the packed_batch form (one subject, payloads in one buffer); otherwise a vector
    // of outgoing messages (each with its own subject, payload and headers).
    auto message_path_run_as = [&](bool packed) {
      return run_in_actor(sys, [&, packed](caf::event_based_actor* self, auto done) {
        auto t0 = std::make_shared<clk::time_point>(clk::now());
        auto batches = (n + batch - 1) / batch;
        auto sent = std::make_shared<int>(0);
        auto acked = std::make_shared<int>(0);
        auto published = std::make_shared<uint64_t>(0);
        auto step = std::make_shared<step_fn>();
        *step = [=] {
          auto first = *sent * batch;
          ++*sent;
          auto count = std::min(batch, n - first);
          auto pending = [&] {
            if (packed) {
              natsvisor::packed_batch pb;
              pb.subject = subject;
              pb.data.reserve(payload.size() * static_cast<size_t>(count));
              pb.sizes.reserve(static_cast<size_t>(count));
              for (int i = 0; i < count; ++i)
                pb.add(payload);
              return natsvisor::request_publish_batch(self, sup, std::move(pb));
            }
            std::vector<natsvisor::outgoing> msgs;
            msgs.reserve(static_cast<size_t>(count));
            for (int i = 0; i < count; ++i)
              msgs.push_back(natsvisor::outgoing{subject, payload, {}});
            return natsvisor::request_publish_batch(self, sup, std::move(msgs));
          }();
          pending.then(
            [=](uint64_t k) {
              *published += k;
              if (*sent < batches)
                (*step)();
              if (++*acked == batches) {
                *step = nullptr;
                // The final round trip on the same connection, through the same actor.
                natsvisor::request_health(self, sup).then(
                  [=](natsvisor::health_result& h) {
                    if (!h.healthy)
                      die("final round trip failed: " + h.detail);
                    if (*published != static_cast<uint64_t>(n))
                      die("message path published fewer messages than sent");
                    done(n / secs(clk::now() - *t0));
                  },
                  [=](caf::error& err) { die("health: " + natsvisor::describe(err)); });
              }
            },
            [=](caf::error& err) { die("publish batch: " + natsvisor::describe(err)); });
        };
        for (int i = 0; i < pipeline && i < batches; ++i)
          (*step)();
      });
    };
    auto message_path_run = [&] { return message_path_run_as(true); };
    auto message_path_outgoing_run = [&] { return message_path_run_as(false); };
    auto runs = alternate(reps, {raw_run, handle_run, message_path_run, message_path_outgoing_run});
    auto &a = runs[0], &b = runs[1], &c = runs[2], &d = runs[3];
    auto ma = median(a), mb = median(b), mc = median(c), md = median(d);
    std::string k = sc.key;
    res.put(k + ".raw_msgs", ma, "msgs/s");
    res.put(k + ".handle_msgs", mb, "msgs/s");
    res.put(k + ".message_path_msgs", mc, "msgs/s");
    res.put(k + ".message_path_outgoing_msgs", md, "msgs/s");
    res.put(k + ".message_path_outgoing_vs_raw", md / ma, "x");
    res.target(k + ".handle_vs_raw", mb / ma, "x", mb / ma >= 0.97, ">= 0.97x");
    res.target(k + ".message_path_vs_raw", mc / ma, "x", mc / ma >= 0.5, ">= 0.5x");
    res.numbers[k + ".messages"] = n;
  }
  res.numbers["publish.batch_size"] = batch;
  res.numbers["publish.batches_in_flight"] = pipeline;
  natsConnection_Destroy(raw);
}

// ================================================================================================
// 3. Request/reply
// ================================================================================================

void on_echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  if (auto reply = natsMsg_GetReply(msg))
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
}

void bench_request(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[3/5] request/reply\n");
  std::fflush(stdout);
  nats_server srv{server_options{false, 0}};
  auto url = srv.url();
  // The responder: raw nats.c on its own connection (send-asap, so it adds no flush delay).
  natsConnection* responder = raw_connect(url, true);
  natsSubscription* echo = nullptr;
  check(natsConnection_Subscribe(&echo, responder, "bench.echo", on_echo, nullptr), "subscribe");
  check(natsConnection_Flush(responder), "responder flush");

  auto cfg_default = base_settings(url);
  auto cfg_asap = base_settings(url);
  cfg_asap.nats.send_asap = true;
  natsvisor::connection_service svc_default{sys, cfg_default};
  natsvisor::connection_service svc_asap{sys, cfg_asap};
  if (!svc_default.get_connection() || !svc_asap.get_connection())
    die("get_connection failed at warm-up");
  natsConnection* raw_default = raw_connect(url, false);
  natsConnection* raw_asap = raw_connect(url, true);

  const int reps = opt.quick ? 7 : 9;
  const int n_default = opt.quick ? 300 : 1000;
  const int n_fast = opt.quick ? 2000 : 6000;
  const int concurrent = 100;
  const int per_actor = opt.quick ? 40 : 100;
  const std::string payload(16, 'r');

  auto raw_run = [&](natsConnection* nc, int n) {
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i) {
      natsMsg* reply = nullptr;
      check(natsConnection_Request(&reply, nc, "bench.echo", payload.data(),
                                   static_cast<int>(payload.size()), 2000),
            "raw request");
      natsMsg_Destroy(reply);
    }
    return n / secs(clk::now() - t0);
  };
  auto mp_sequential = [&](const caf::actor& sup, int n) {
    return run_in_actor(sys, [&, sup, n](caf::event_based_actor* self, auto done) {
      auto t0 = std::make_shared<clk::time_point>(clk::now());
      auto got = std::make_shared<int>(0);
      auto step = std::make_shared<step_fn>();
      *step = [=] {
        natsvisor::request_reply(self, sup, natsvisor::outgoing{"bench.echo", payload, {}}, 2s)
          .then(
            [=](natsvisor::nats_message& m) {
              if (m.payload != payload)
                die("wrong reply");
              if (++*got == n) {
                *step = nullptr;
                done(n / secs(clk::now() - *t0));
              } else {
                (*step)();
              }
            },
            [=](caf::error& err) { die("request_reply: " + natsvisor::describe(err)); });
      };
      (*step)();
    });
  };
  // `concurrent` actors, each doing `per_actor` sequential requests, all at once.
  auto mp_concurrent = [&](const caf::actor& sup) {
    auto left = std::make_shared<std::atomic<int>>(concurrent);
    auto prom = std::make_shared<std::promise<void>>();
    auto fut = prom->get_future();
    std::vector<caf::actor> actors;
    for (int a = 0; a < concurrent; ++a)
      actors.push_back(sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
        auto got = std::make_shared<int>(0);
        auto step = std::make_shared<step_fn>();
        *step = [=] {
          natsvisor::request_reply(self, sup, natsvisor::outgoing{"bench.echo", payload, {}}, 5s)
            .then(
              [=](natsvisor::nats_message&) {
                if (++*got == per_actor) {
                  *step = nullptr;
                  if (left->fetch_sub(1) == 1)
                    prom->set_value();
                  self->quit();
                } else {
                  (*step)();
                }
              },
              [=](caf::error& err) { die("request_reply: " + natsvisor::describe(err)); });
        };
        return {[=](int32_t) { (*step)(); }};
      }));
    auto t0 = clk::now();
    for (auto& a : actors)
      caf::anon_send(a, int32_t{1});
    if (fut.wait_for(300s) != std::future_status::ready)
      die("concurrent requests did not finish");
    return concurrent * per_actor / secs(clk::now() - t0);
  };

  // The raw anchor for the concurrent figure: `concurrent` std::threads, each doing `per_actor`
  // sequential natsConnection_RequestMsg on one shared raw connection. The threads exist and
  // wait at a start line before the clock starts: creating them is not timed.
  auto raw_threads = [&](natsConnection* nc) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < concurrent; ++t)
      threads.emplace_back([&] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire))
          std::this_thread::yield();
        for (int i = 0; i < per_actor; ++i) {
          natsMsg* msg = nullptr;
          natsMsg* reply = nullptr;
          check(natsMsg_Create(&msg, "bench.echo", nullptr, payload.data(),
                               static_cast<int>(payload.size())),
                "natsMsg_Create");
          check(natsConnection_RequestMsg(&reply, nc, msg, 5000), "raw threaded request");
          natsMsg_Destroy(reply);
          natsMsg_Destroy(msg);
        }
      });
    while (ready.load() < concurrent)
      std::this_thread::yield();
    auto t0 = clk::now();
    go.store(true, std::memory_order_release);
    for (auto& t : threads)
      t.join();
    return concurrent * per_actor / secs(clk::now() - t0);
  };

  // Diagnostics: a bare round trip (PING/PONG) raw, and through the message path's actors
  // (request_health: requester -> supervisor -> connection actor -> FlushTimeout -> requester).
  auto raw_ping = [&](natsConnection* nc, int n) {
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i)
      check(natsConnection_FlushTimeout(nc, 2000), "raw ping");
    return n / secs(clk::now() - t0);
  };
  auto mp_health = [&](const caf::actor& sup, int n) {
    return run_in_actor(sys, [&, sup, n](caf::event_based_actor* self, auto done) {
      auto t0 = std::make_shared<clk::time_point>(clk::now());
      auto got = std::make_shared<int>(0);
      auto step = std::make_shared<step_fn>();
      *step = [=] {
        natsvisor::request_health(self, sup).then(
          [=](natsvisor::health_result& h) {
            if (!h.healthy)
              die("health: " + h.detail);
            if (++*got == n) {
              *step = nullptr;
              done(n / secs(clk::now() - *t0));
            } else {
              (*step)();
            }
          },
          [=](caf::error& err) { die("request_health: " + natsvisor::describe(err)); });
      };
      (*step)();
    });
  };

  auto runs = alternate(reps, {
                                [&] { return raw_run(raw_default, n_default); },
                                [&] { return raw_run(raw_asap, n_fast); },
                                [&] { return mp_sequential(svc_default.actor(), n_default); },
                                [&] { return mp_sequential(svc_asap.actor(), n_fast); },
                                [&] { return mp_concurrent(svc_asap.actor()); },
                                [&] { return mp_concurrent(svc_default.actor()); },
                                [&] { return raw_ping(raw_asap, n_fast); },
                                [&] { return mp_health(svc_asap.actor(), n_fast); },
                                [&] { return raw_threads(raw_default); },
                                [&] { return raw_threads(raw_asap); },
                              });
  auto &rd = runs[0], &ra = runs[1], &md = runs[2], &ma = runs[3], &mc = runs[4], &mcd = runs[5],
       &rp = runs[6], &mh = runs[7], &rtd = runs[8], &rta = runs[9];
  natsConnection_Destroy(raw_default);
  natsConnection_Destroy(raw_asap);
  natsSubscription_Destroy(echo);
  natsConnection_Destroy(responder);

  auto mrd = median(rd), mra = median(ra), mmd = median(md), mma = median(ma), mmc = median(mc),
       mmcd = median(mcd);
  // Each side is judged in its best configuration, as raw_best does for nats.c: send-asap for
  // one request at a time, natsvisor's default (adaptive flushing) for many at once.
  auto raw_best = std::max(mrd, mra);
  auto mp_best = std::max(mma, mmd);
  auto mp_concurrent_best = std::max(mmc, mmcd);
  res.put("request.raw_default_rps", mrd, "req/s");
  res.put("request.raw_send_asap_rps", mra, "req/s");
  res.put("request.message_path_default_rps", mmd, "req/s");
  res.put("request.message_path_send_asap_rps", mma, "req/s");
  res.put("request.message_path_concurrent_default_rps", mmcd, "req/s");
  res.put("request.message_path_concurrent_send_asap_rps", mmc, "req/s");
  res.numbers["request.raw_best_rps"] = raw_best;
  res.target("request.message_path_rps", mp_best, "req/s", mp_best >= raw_best / 1.25,
             ">= raw best/1.25 = " + fmt_num(raw_best / 1.25));
  res.target("request.message_path_concurrent_rps", mp_concurrent_best, "req/s",
             mp_concurrent_best >= 10.0 * mrd, ">= 10x raw default = " + fmt_num(10.0 * mrd));
  res.put("request.message_path_vs_raw_best", mp_best / raw_best, "x");
  res.put("request.concurrent_vs_raw_default", mp_concurrent_best / mrd, "x");
  // nats.c's own best with `concurrent` threads on one connection (default or send-asap).
  auto mrtd = median(rtd), mrta = median(rta), raw_threads_best = std::max(mrtd, mrta);
  res.put("request.raw_threads_default_rps", mrtd, "req/s");
  res.put("request.raw_threads_send_asap_rps", mrta, "req/s");
  res.target("request.concurrent_vs_raw_threads", mp_concurrent_best / raw_threads_best, "x",
             mp_concurrent_best >= 0.8 * raw_threads_best,
             ">= 0.8x raw " + std::to_string(concurrent) + " threads = "
               + fmt_num(0.8 * raw_threads_best) + " req/s");
  res.numbers["request.concurrent_actors"] = concurrent;
  res.put("request.diag_raw_ping_rps", median(rp), "rt/s");
  res.put("request.diag_message_path_ping_rps", median(mh), "rt/s");
  res.put("request.diag_actor_overhead_us", 1e6 / median(mh) - 1e6 / median(rp), "us");
}

// ================================================================================================
// 4. Recovery
// ================================================================================================

struct event_log {
  std::mutex mtx;
  std::vector<std::pair<clk::time_point, natsvisor::state_changed>> events;

  // Waits until a state_changed of slot 0 with `state` arrived after `since`.
  bool await(natsvisor::connection_state state, clk::time_point since, clk::duration deadline,
             clk::time_point* at = nullptr) {
    auto until = clk::now() + deadline;
    while (clk::now() < until) {
      {
        std::lock_guard<std::mutex> g{mtx};
        for (auto& [t, ev] : events)
          if (t >= since && ev.slot == 0 && ev.state == state) {
            if (at)
              *at = t;
            return true;
          }
      }
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
};

// Publishes through a natsvisor handle and confirms each publish with a flush round trip, as
// fast as it can, recording when each confirmed publish completed.
struct poller {
  natsvisor::connection_service& svc;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> armed_ns{INT64_MAX}; // count successes after this instant
  std::atomic<int64_t> first_ok_ns{0};
  std::atomic<int64_t> last_ok_ns{0};
  bool record = false;
  std::vector<clk::time_point> oks; // only when record; read after join
  std::thread thread;

  explicit poller(natsvisor::connection_service& s, bool rec) : svc(s), record(rec) {
    thread = std::thread([this] { run(); });
  }
  ~poller() { finish(); }
  void finish() {
    stop = true;
    if (thread.joinable())
      thread.join();
  }
  static int64_t ns(clk::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  void arm(clk::time_point t) {
    first_ok_ns = 0;
    armed_ns = ns(t);
  }
  void run() {
    natsvisor::connection_handle h;
    while (!stop) {
      if (!h || h.closed()) {
        auto e = svc.get_connection();
        if (!e) {
          std::this_thread::sleep_for(1ms);
          continue;
        }
        h = *e;
      }
      auto s = natsConnection_PublishString(h.get(), "bench.recovery", "x");
      if (s == NATS_OK)
        s = natsConnection_FlushTimeout(h.get(), 10);
      auto now = clk::now();
      if (s == NATS_OK) {
        auto t = ns(now);
        last_ok_ns = t;
        int64_t zero = 0;
        if (t > armed_ns.load())
          first_ok_ns.compare_exchange_strong(zero, t);
        if (record)
          oks.push_back(now);
      } else {
        if (s == NATS_CONNECTION_CLOSED)
          h = {};
        std::this_thread::sleep_for(1ms);
      }
    }
  }
};

// Records the first instant the port accepts a TCP connection again.
clk::time_point probe_port_until_open(int port, std::atomic<bool>& stop) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (!stop) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) {
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      auto t = clk::now();
      ::close(fd);
      if (rc == 0)
        return t;
    }
    std::this_thread::sleep_for(200us);
  }
  return clk::now();
}

// Starts the server again; returns when its port first accepted a connection.
clk::time_point restart_server(nats_server& srv) {
  std::atomic<bool> stop{false};
  clk::time_point back{};
  std::thread probe([&] { back = probe_port_until_open(srv.port(), stop); });
  try {
    srv.start();
  } catch (...) {
    stop = true;
    probe.join();
    throw;
  }
  probe.join(); // start() returns only once the port accepts, so the probe ends
  return back;
}

natsvisor::settings recovery_settings(const std::string& url) {
  auto s = base_settings(url);
  s.nats.reconnect_wait = 100ms;
  s.nats.reconnect_jitter = 0ms;
  s.nats.max_reconnect = 4;
  s.policy.base_delay = 200ms;
  s.policy.jitter = 0.0;
  s.policy.multiplier = 1.0;
  s.policy.max_attempts = 50;
  s.policy.max_restarts = 100000;
  s.request_timeout = 10s;
  return s;
}

caf::actor spawn_watcher(caf::actor_system& sys, std::shared_ptr<event_log> log) {
  return sys.spawn([log](caf::event_based_actor*) -> caf::behavior {
    return {[log](natsvisor::state_changed& ev) {
      std::lock_guard<std::mutex> g{log->mtx};
      log->events.emplace_back(clk::now(), std::move(ev));
    }};
  });
}

// One kill/start cycle; returns ms from server-back to the first confirmed publish, or NAN.
double recovery_cycle(nats_server& srv, natsvisor::connection_service& svc, poller& p,
                      event_log& log, bool restart, clk::time_point* killed_at = nullptr,
                      clk::time_point* back_at = nullptr) {
  // Steady state first: connected and publishing.
  auto ok_before = poller::ns(clk::now());
  auto until = clk::now() + 10s;
  while (p.last_ok_ns.load() <= ok_before && clk::now() < until)
    std::this_thread::sleep_for(1ms);
  if (p.last_ok_ns.load() <= ok_before)
    return NAN;
  srv.kill();
  auto t_kill = clk::now();
  if (killed_at)
    *killed_at = t_kill;
  p.arm(t_kill);
  if (restart && !log.await(natsvisor::connection_state::restarting, t_kill, 10s)) {
    std::fprintf(stderr, "  no 'restarting' state within 10 s after the kill\n");
    srv.start();
    return NAN;
  }
  auto back = restart_server(srv);
  if (back_at)
    *back_at = back;
  until = clk::now() + 15s;
  while (p.first_ok_ns.load() == 0 && clk::now() < until)
    std::this_thread::sleep_for(1ms);
  auto ok = p.first_ok_ns.load();
  if (ok == 0)
    return NAN;
  auto back_ns = poller::ns(back);
  // Clear the failure history so every cycle starts from the configured first delay.
  svc.reset();
  return static_cast<double>(ok - back_ns) / 1e6;
}

void bench_recovery(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[4/5] recovery\n");
  std::fflush(stdout);
  nats_server srv{server_options{false, 0}};
  auto url = srv.url();
  auto cfg = recovery_settings(url);
  const int reps = opt.quick ? 5 : 20;
  std::vector<double> reconnect, restart;
  {
    natsvisor::connection_service svc{sys, cfg};
    auto log = std::make_shared<event_log>();
    auto watcher = spawn_watcher(sys, log);
    svc.watch(watcher);
    poller p{svc, false};
    for (int r = 0; r < reps; ++r) {
      auto a = recovery_cycle(srv, svc, p, *log, false);
      auto b = recovery_cycle(srv, svc, p, *log, true);
      if (!std::isnan(a))
        reconnect.push_back(a);
      if (!std::isnan(b))
        restart.push_back(b);
    }
    caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
  }
  if (static_cast<int>(reconnect.size()) < reps || static_cast<int>(restart.size()) < reps)
    res.notes.push_back("recovery: " + std::to_string(reps - reconnect.size()) + " reconnect and "
                        + std::to_string(reps - restart.size())
                        + " restart cycles did not recover within 15 s");
  auto delay_ms = ms_of(cfg.policy.base_delay);
  auto wait_ms = ms_of(cfg.nats.reconnect_wait);
  res.put("recovery.configured_delay_ms", delay_ms, "ms");
  res.put("recovery.configured_reconnect_wait_ms", wait_ms, "ms");
  res.numbers["recovery.repetitions"] = reps;
  auto rp50 = median(reconnect), sp50 = median(restart);
  res.target("recovery.reconnect_p50_ms", rp50, "ms", rp50 <= wait_ms + 100.0,
             "<= reconnect_wait + 100 = " + fmt_num(wait_ms + 100.0));
  res.put("recovery.reconnect_p99_ms", percentile(reconnect, 99), "ms");
  res.target("recovery.restart_p50_ms", sp50, "ms", sp50 <= delay_ms + 100.0,
             "<= base_delay + 100 = " + fmt_num(delay_ms + 100.0));
  res.put("recovery.restart_p99_ms", percentile(restart, 99), "ms");

  // The timeline: one restart cycle, confirmed publishes per 10 ms and the state changes.
  {
    natsvisor::connection_service svc{sys, cfg};
    auto log = std::make_shared<event_log>();
    auto watcher = spawn_watcher(sys, log);
    svc.watch(watcher);
    clk::time_point killed{}, back{};
    double took = NAN;
    std::vector<clk::time_point> oks;
    {
      poller p{svc, true};
      std::this_thread::sleep_for(500ms);
      took = recovery_cycle(srv, svc, p, *log, true, &killed, &back);
      std::this_thread::sleep_for(500ms);
      p.finish();
      oks = std::move(p.oks);
    }
    caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
    auto origin = killed;
    auto rel = [&](clk::time_point t) { return ms_of(t - origin); };
    std::ofstream dat(opt.timeline);
    dat << "# confirmed publishes (publish + flush round trip through a natsvisor handle) per "
           "10 ms; t = 0 at the kill\n# t_ms count\n";
    if (!oks.empty()) {
      auto lo = std::floor(rel(oks.front()) / 10.0) * 10.0;
      auto hi = rel(oks.back());
      std::map<long, int> buckets;
      for (long b = static_cast<long>(lo); b <= static_cast<long>(hi); b += 10)
        buckets[b] = 0;
      for (auto& t : oks)
        ++buckets[static_cast<long>(std::floor(rel(t) / 10.0) * 10.0)];
      for (auto& [b, n] : buckets)
        dat << b << ' ' << n << '\n';
    }
    auto events_path = opt.timeline.substr(0, opt.timeline.rfind('.')) + "_events.dat";
    std::ofstream ev(events_path);
    ev << "# t_ms state (slot 0 = the shared connection); t = 0 at the kill\n";
    ev << "0 server_killed\n" << rel(back) << " server_back\n";
    std::lock_guard<std::mutex> g{log->mtx};
    for (auto& [t, e] : log->events)
      if (e.slot == 0 && t >= origin - 1s)
        ev << rel(t) << ' ' << natsvisor::to_string(e.state) << '\n';
    res.numbers["recovery.timeline_recovery_ms"] = took;
  }
}

// ================================================================================================
// 5. Scale
// ================================================================================================

// `actors` service actors, each sending `per_actor` get_connection requests at once.
struct scale_run {
  double total_s;
  double p50_us;
  double p99_us;
};

scale_run scale_once(caf::actor_system& sys, const caf::actor& sup, int actors, int per_actor) {
  auto lat = std::make_shared<std::vector<double>>(static_cast<size_t>(actors) * per_actor, 0.0);
  auto left = std::make_shared<std::atomic<int>>(actors);
  auto prom = std::make_shared<std::promise<void>>();
  auto fut = prom->get_future();
  std::vector<caf::actor> hs;
  hs.reserve(static_cast<size_t>(actors));
  for (int a = 0; a < actors; ++a)
    hs.push_back(sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      return {[=](int32_t) {
        auto got = std::make_shared<int>(0);
        for (int i = 0; i < per_actor; ++i) {
          auto t0 = clk::now();
          natsvisor::request_connection(self, sup).then(
            [=](natsvisor::connection_handle&) {
              (*lat)[static_cast<size_t>(a) * per_actor + i]
                = std::chrono::duration<double, std::micro>(clk::now() - t0).count();
              if (++*got == per_actor) {
                if (left->fetch_sub(1) == 1)
                  prom->set_value();
                self->quit();
              }
            },
            [=](caf::error& err) { die("scale request_connection: " + natsvisor::describe(err)); });
        }
      }};
    }));
  auto t0 = clk::now();
  for (auto& h : hs)
    caf::anon_send(h, int32_t{1});
  if (fut.wait_for(600s) != std::future_status::ready)
    die("scale run did not finish");
  auto total = secs(clk::now() - t0);
  return {total, percentile(*lat, 50), percentile(*lat, 99)};
}

void bench_scale(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[5/5] scale\n");
  std::fflush(stdout);
  const int reps = 5;
  const int per_actor = 100;
  {
    nats_server srv{server_options{false, 0}};
    natsvisor::connection_service svc{sys, base_settings(srv.url())};
    if (!svc.get_connection())
      die("get_connection failed at warm-up");
    std::vector<int> sizes = opt.quick ? std::vector<int>{1000} : std::vector<int>{1000, 10000};
    for (int actors : sizes) {
      std::vector<double> total, p50, p99;
      for (int r = 0; r < reps; ++r) {
        auto x = scale_once(sys, svc.actor(), actors, per_actor);
        total.push_back(x.total_s);
        p50.push_back(x.p50_us);
        p99.push_back(x.p99_us);
      }
      auto prefix = "scale.a" + std::to_string(actors) + ".";
      res.put(prefix + "total_s", median(total), "s");
      res.put(prefix + "p50_us", median(p50), "us");
      res.put(prefix + "p99_us", median(p99), "us");
      res.put(prefix + "requests_per_s", actors * per_actor / median(total), "req/s");
      // The headline names carry the largest run.
      res.numbers["scale.actors"] = actors;
      res.numbers["scale.requests"] = static_cast<double>(actors) * per_actor;
      res.numbers["scale.total_s"] = median(total);
      res.numbers["scale.p50_us"] = median(p50);
      res.numbers["scale.p99_us"] = median(p99);
    }
  }
  // Connections: 4 servers x 25 leases = 100 pooled connections in this process.
  const int servers = 4;
  const int per_server = 25;
  std::vector<std::unique_ptr<nats_server>> srvs;
  for (int i = 0; i < servers; ++i)
    srvs.push_back(std::make_unique<nats_server>(server_options{false, 0}));
  std::vector<double> per_conn_kb, open_counts;
  for (int r = 0; r < reps; ++r) {
    auto cfg = base_settings(srvs[0]->url());
    cfg.connection_pool_size = per_server;
    natsvisor::connection_service svc{sys, cfg};
    auto rss0 = natsvisor::testing::proc_status_kb("VmRSS");
    std::vector<natsvisor::lease> leases;
    for (auto& s : srvs)
      for (int i = 0; i < per_server; ++i) {
        auto l = svc.lease(s->url());
        if (!l)
          die("lease: " + natsvisor::describe(l.error()));
        leases.push_back(std::move(*l));
      }
    auto rss1 = natsvisor::testing::proc_status_kb("VmRSS");
    int open = 0;
    for (auto& s : srvs)
      open += std::max(0, s->connection_count());
    open_counts.push_back(open);
    per_conn_kb.push_back(static_cast<double>(rss1 - rss0) / static_cast<double>(leases.size()));
    leases.clear();
  }
  res.target("scale.connections", median(open_counts), "conns", median(open_counts) >= 100,
             ">= 100 open");
  res.put("scale.rss_per_connection_kb", median(per_conn_kb), "KB");
  // VmHWM: the peak of the whole process so far (all sections, both scale runs included).
  res.put("scale.peak_rss_mb", natsvisor::testing::proc_status_kb("VmHWM") / 1024.0, "MB");
}

// A producer publishing 10x faster than its connection drains: a real nats-server behind a
// loopback proxy forwarding at a fixed byte rate (tests/support/throttle_proxy.hpp). The
// mailboxes between the producer and nats.c are bounded by the URL's credit, the outbox by its
// own bound; the producer is told (publish returns false) instead of the memory growing.
// Reported: peak VmRSS during the run, the configured limit (credit + outbox bytes), and how
// many publishes were accepted, told overloaded, dropped, and arrived at the server. Then the
// same with the plain fire-and-forget API (charged at the supervisor's door, told by events).
void bench_overload(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[+] overload\n");
  std::fflush(stdout);
  using natsvisor::testing::rss_sampler;
  const uint64_t drain = 8u << 20; // bytes/s through the proxy
  const double factor = 10.0;      // the producer offers this many times the drain rate
  const size_t size = 1024;
  const auto duration = opt.quick ? 3s : 6s;
  nats_server srv{server_options{false, 0}};
  auto cfg = base_settings("");
  auto limit_bytes = static_cast<double>(cfg.publish_credit_bytes + cfg.publish_buffer_bytes);
  res.put("overload.buffer_limit_mb", limit_bytes / (1024.0 * 1024.0), "MB");
  res.numbers["overload.drain_bytes_per_s"] = static_cast<double>(drain);
  res.numbers["overload.offered_factor"] = factor;
  auto run = [&](const std::string& prefix, bool with_publisher) {
    // Counts what the server delivers, on a connection that bypasses the proxy.
    natsConnection* counter = raw_connect(srv.url());
    natsSubscription* sub = nullptr;
    check(natsConnection_SubscribeSync(&sub, counter, "bench.over"), "subscribe");
    check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
    check(natsConnection_Flush(counter), "flush");
    // Drained as they come, so that they do not pile up in this process's memory.
    std::atomic<uint64_t> arrived{0};
    std::atomic<bool> counting{true};
    std::thread drainer([&] {
      while (counting) {
        natsMsg* msg = nullptr;
        if (natsSubscription_NextMsg(&msg, sub, 50) == NATS_OK) {
          natsMsg_Destroy(msg);
          ++arrived;
        }
      }
    });
    auto proxy = std::make_unique<natsvisor::testing::throttle_proxy>(srv.port(), drain);
    auto s = base_settings(proxy->url());
    s.nats.ping_interval = 60s; // PINGs queue behind the data on the slow link
    s.nats.max_pings_out = 10;
    auto svc = std::make_unique<natsvisor::connection_service>(sys, s);
    if (!svc->get_connection())
      die("overload: no connection through the proxy");
    caf::scoped_actor self{sys};
    caf::actor sup = caf::actor_cast<caf::actor>(svc->api());
    natsvisor::publisher pub;
    self->request(svc->api(), 5s, natsvisor::publisher_atom_v, std::string{})
      .receive([&](natsvisor::publisher& p) { pub = std::move(p); },
               [](caf::error& err) { die("publisher: " + natsvisor::describe(err)); });
    uint64_t told_events = 0;
    if (!with_publisher)
      self->send(sup, natsvisor::watch_atom_v, caf::actor_cast<caf::actor>(self));
    const std::string payload(size, 'x');
    auto rss0 = natsvisor::testing::proc_status_kb("VmRSS");
    uint64_t attempts = 0, accepted = 0, refused = 0;
    long peak_kb = 0;
    {
      rss_sampler rss;
      // Paced in 1 ms slices at `factor` times the drain rate.
      const double per_ms = factor * static_cast<double>(drain) / static_cast<double>(size) / 1000;
      auto t0 = clk::now();
      for (int ms = 1; clk::now() - t0 < duration; ++ms) {
        auto due = static_cast<uint64_t>(per_ms * ms);
        for (; attempts < due; ++attempts) {
          natsvisor::outgoing m{"bench.over", payload, {}};
          if (!with_publisher)
            natsvisor::publish(self.ptr(), sup, std::move(m));
          else if (natsvisor::publish(self.ptr(), pub, std::move(m)))
            ++accepted;
          else
            ++refused;
        }
        std::this_thread::sleep_until(t0 + std::chrono::milliseconds(ms));
      }
      // Until the credit drained (everything accepted handed to nats.c or the outbox).
      auto until = clk::now() + 60s;
      while (pub.credit->used().messages > 0 && clk::now() < until)
        std::this_thread::sleep_for(10ms);
      peak_kb = rss.peak_kb();
    }
    if (!with_publisher) {
      bool more = true;
      while (more)
        self->receive([&](natsvisor::publishes_dropped& ev) { told_events += ev.messages; },
                      [](natsvisor::state_changed&) {},
                      caf::after(300ms) >> [&] { more = false; });
      refused = told_events;
      accepted = attempts - refused;
    }
    uint64_t dropped = 0;
    if (auto st = svc->status())
      for (auto& u : *st)
        for (size_t i = 0; i < natsvisor::drop_reason_count; ++i)
          if (i != static_cast<size_t>(natsvisor::drop_reason::overloaded))
            dropped += u.publishes.dropped[i];
    // Everything accepted must arrive (at the drain rate): the fate of every publish is known.
    auto until = clk::now() + 120s;
    while (arrived < accepted - dropped && clk::now() < until)
      std::this_thread::sleep_for(10ms);
    counting = false;
    drainer.join();
    proxy.reset(); // before the service: a write blocked on the slow link fails at once
    svc.reset();
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(counter);
    res.put(prefix + "peak_rss_mb", peak_kb / 1024.0, "MB");
    res.put(prefix + "rss_growth_mb", (peak_kb - rss0) / 1024.0, "MB");
    res.numbers[prefix + "attempts"] = static_cast<double>(attempts);
    res.numbers[prefix + "accepted"] = static_cast<double>(accepted);
    res.numbers[prefix + "overloaded"] = static_cast<double>(refused);
    res.numbers[prefix + "dropped"] = static_cast<double>(dropped);
    res.numbers[prefix + "arrived"] = static_cast<double>(arrived.load());
    std::printf("  %s: attempts %llu accepted %llu overloaded %llu dropped %llu arrived %llu, "
                "peak RSS %.1f MB (+%.1f MB)\n",
                with_publisher ? "publisher" : "plain fire-and-forget",
                static_cast<unsigned long long>(attempts), static_cast<unsigned long long>(accepted),
                static_cast<unsigned long long>(refused), static_cast<unsigned long long>(dropped),
                static_cast<unsigned long long>(arrived.load()), peak_kb / 1024.0,
                (peak_kb - rss0) / 1024.0);
    if (arrived + dropped != accepted)
      die("overload: " + std::to_string(accepted - dropped - arrived)
          + " accepted publishes neither arrived nor were reported dropped");
    return (peak_kb - rss0) / 1024.0;
  };
  auto growth = run("overload.", true);
  res.target("overload.rss_growth_vs_limit", growth / (limit_bytes / (1024.0 * 1024.0)), "x",
             growth <= limit_bytes / (1024.0 * 1024.0) + 16, "growth <= limit + 16 MB");
  run("overload.plain_", false);
}

// ================================================================================================
// 6. Subscriptions at scale
// ================================================================================================


// Bytes the allocator has handed out and not taken back (all arenas): unlike RSS it is not
// hidden by pages freed earlier and reused.
double heap_in_use() {
  return static_cast<double>(mallinfo2().uordblks);
}

struct subs_run {
  double threads = 0;    ///< growth of the thread count by the subscriptions
  double rss_bytes = 0;  ///< RSS growth per subscription
  double heap_bytes = 0; ///< heap growth per subscription
  double msgs_per_s = 0; ///< delivery to the subscriptions, publish start to last arrival
};

// Publishes `total` messages round robin over `subjects` on a raw connection, then waits until
// `count` reached `total`; returns messages per second.
double deliver(const std::string& url, const std::vector<std::string>& subjects, uint64_t total,
               const std::atomic<uint64_t>& count) {
  auto pub = raw_connect(url);
  auto t0 = clk::now();
  for (uint64_t i = 0; i < total; ++i)
    check(natsConnection_PublishString(pub, subjects[i % subjects.size()].c_str(), "0123456789abcdef"),
          "publish");
  check(natsConnection_FlushTimeout(pub, 10000), "flush");
  auto until = clk::now() + 120s;
  while (count.load(std::memory_order_acquire) < total) {
    if (clk::now() > until)
      die("subs: " + std::to_string(count.load()) + " of " + std::to_string(total)
          + " messages delivered within 120 s");
    std::this_thread::sleep_for(1ms);
  }
  auto took = secs(clk::now() - t0);
  natsConnection_Destroy(pub);
  return static_cast<double>(total) / took;
}

// natsvisor: `n` message-path subscriptions of one counting actor on one URL, all requested at
// once by an event-based actor.
subs_run subs_natsvisor(caf::actor_system& sys, const std::string& url,
                        const std::vector<std::string>& subjects, uint64_t total) {
  auto cfg = base_settings(url);
  cfg.max_subscriptions = std::max<int>(cfg.max_subscriptions, static_cast<int>(subjects.size()) + 1);
  natsvisor::connection_service svc{sys, cfg};
  auto count = std::make_shared<std::atomic<uint64_t>>(0);
  auto counter = sys.spawn([count](caf::event_based_actor*) -> caf::behavior {
    return {[count](const natsvisor::nats_message&) {
      count->fetch_add(1, std::memory_order_release);
    }};
  });
  // Connected, with the reply subscription and a first message-path subscription.
  if (!svc.subscribe("warm.up", counter) || !svc.health_check())
    die("subs: warm-up failed");
  subs_run out;
  auto threads0 = static_cast<double>(natsvisor::testing::thread_count());
  auto rss0 = natsvisor::testing::proc_status_kb("VmRSS");
  auto heap0 = heap_in_use();
  auto n = subjects.size();
  auto ok = run_in_actor(sys, [&](caf::event_based_actor* self, std::function<void(double)> done) {
    auto left = std::make_shared<size_t>(n);
    for (auto& subject : subjects)
      natsvisor::request_subscribe(self, svc.actor(), subject, counter, {}, {}, 120s)
        .then(
          [=](uint64_t) {
            if (--*left == 0)
              done(1);
          },
          [=](caf::error& err) { die("subs: subscribe: " + natsvisor::describe(err)); });
  });
  if (ok != 1)
    die("subs: subscribing failed");
  out.threads = static_cast<double>(natsvisor::testing::thread_count()) - threads0;
  out.rss_bytes = static_cast<double>(natsvisor::testing::proc_status_kb("VmRSS") - rss0) * 1024.0 / n;
  out.heap_bytes = (heap_in_use() - heap0) / n;
  out.msgs_per_s = deliver(url, subjects, total, *count);
  // Everything delivered: every subscription's thread exists by now.
  out.threads = std::max(out.threads, static_cast<double>(natsvisor::testing::thread_count()) - threads0);
  caf::anon_send_exit(counter, caf::exit_reason::user_shutdown);
  return out;
}

void on_count(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  static_cast<std::atomic<uint64_t>*>(closure)->fetch_add(1, std::memory_order_release);
  natsMsg_Destroy(msg);
}

// Raw nats.c: the same subscriptions on one connection with the shared delivery pool, each
// message counted in its callback.
subs_run subs_raw(const std::string& url, const std::vector<std::string>& subjects,
                  uint64_t total) {
  natsOptions* o = nullptr;
  check(natsOptions_Create(&o), "natsOptions_Create");
  check(natsOptions_SetURL(o, url.c_str()), "natsOptions_SetURL");
  check(nats_SetMessageDeliveryPoolSize(4), "nats_SetMessageDeliveryPoolSize");
  check(natsOptions_UseGlobalMessageDelivery(o, true), "natsOptions_UseGlobalMessageDelivery");
  natsConnection* nc = nullptr;
  check(natsConnection_Connect(&nc, o), "natsConnection_Connect");
  natsOptions_Destroy(o);
  std::atomic<uint64_t> count{0};
  std::vector<natsSubscription*> subs;
  subs.reserve(subjects.size() + 1);
  subs.push_back(nullptr);
  check(natsConnection_Subscribe(&subs.back(), nc, "warm.up", on_count, &count), "subscribe");
  subs_run out;
  auto threads0 = static_cast<double>(natsvisor::testing::thread_count());
  auto rss0 = natsvisor::testing::proc_status_kb("VmRSS");
  auto heap0 = heap_in_use();
  for (auto& subject : subjects) {
    subs.push_back(nullptr);
    check(natsConnection_Subscribe(&subs.back(), nc, subject.c_str(), on_count, &count),
          "subscribe");
  }
  check(natsConnection_FlushTimeout(nc, 10000), "flush");
  auto n = subjects.size();
  out.threads = static_cast<double>(natsvisor::testing::thread_count()) - threads0;
  out.rss_bytes = static_cast<double>(natsvisor::testing::proc_status_kb("VmRSS") - rss0) * 1024.0 / n;
  out.heap_bytes = (heap_in_use() - heap0) / n;
  out.msgs_per_s = deliver(url, subjects, total, count);
  out.threads = std::max(out.threads, static_cast<double>(natsvisor::testing::thread_count()) - threads0);
  for (auto* s : subs)
    natsSubscription_Destroy(s);
  natsConnection_Destroy(nc);
  return out;
}

void bench_subs(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[6/6] subscriptions\n");
  std::fflush(stdout);
  const int reps = 5;
  const size_t n = 10000;
  const uint64_t total = opt.quick ? 200000 : 1000000;
  server_options no_js;
  no_js.jetstream = false;
  nats_server srv{no_js};
  std::vector<std::string> subjects;
  for (size_t i = 0; i < n; ++i)
    subjects.push_back("bs." + std::to_string(i));
  std::vector<subs_run> nv, raw;
  for (int r = 0; r < reps; ++r) {
    // Alternating, the raw run first every other round.
    if (r % 2 == 1)
      raw.push_back(subs_raw(srv.url(), subjects, total));
    nv.push_back(subs_natsvisor(sys, srv.url(), subjects, total));
    if (r % 2 == 0)
      raw.push_back(subs_raw(srv.url(), subjects, total));
  }
  auto med = [](const std::vector<subs_run>& v, double subs_run::*f) {
    std::vector<double> xs;
    for (auto& x : v)
      xs.push_back(x.*f);
    return median(xs);
  };
  res.put("subscriptions.count", static_cast<double>(n), "subs");
  res.put("subscriptions.messages", static_cast<double>(total), "msgs");
  res.target("subscriptions.threads_10k", med(nv, &subs_run::threads), "threads",
             med(nv, &subs_run::threads) < 16, "< 16 more threads for 10,000 subscriptions");
  // RSS of the first repetition: later ones reuse the pages freed by the earlier ones.
  res.put("subscriptions.bytes_per_sub", nv.front().rss_bytes, "B");
  res.put("subscriptions.heap_bytes_per_sub", med(nv, &subs_run::heap_bytes), "B");
  res.put("subscriptions.raw_threads_10k", med(raw, &subs_run::threads), "threads");
  res.put("subscriptions.raw_bytes_per_sub", raw.front().rss_bytes, "B");
  res.put("subscriptions.raw_heap_bytes_per_sub", med(raw, &subs_run::heap_bytes), "B");
  auto mnv = med(nv, &subs_run::msgs_per_s);
  auto mraw = med(raw, &subs_run::msgs_per_s);
  res.put("subscriptions.delivery_msgs", mnv, "msgs/s");
  res.put("subscriptions.raw_delivery_msgs", mraw, "msgs/s");
  res.put("subscriptions.delivery_vs_raw", mnv / mraw, "x");
  res.notes.push_back("subscriptions: bytes_per_sub is the RSS growth / 10,000 of the first "
                      "repetition (later ones reuse freed pages); heap_bytes_per_sub is the "
                      "allocator's in-use growth / 10,000, median of 5");
}

// ================================================================================================
// 6. Isolation between URLs
// ================================================================================================

// A healthy URL's get_connection and request p99 (a) with no other URL in trouble, (b) while
// another URL has 100k parked requests (nothing listens there: its connection restarts), (c)
// while another URL's server hangs (SIGSTOP) under a flood of 10k requests. Each repetition and
// scenario uses a fresh service; the healthy URL is probed at a fixed rate (every 5 ms, alternating
// get_connection and request) for a fixed window that starts with the sick URL's flood. Ratio: the worse of (b), (c) over (a), medians over reps.
void bench_isolation(caf::actor_system& sys, const options& opt, results& res) {
  std::printf("[6] isolation between URLs\n");
  std::fflush(stdout);
  nats_server healthy{server_options{false, 0}};
  natsConnection* responder = raw_connect(healthy.url(), true);
  natsSubscription* echo = nullptr;
  check(natsConnection_Subscribe(&echo, responder, "bench.iso", on_echo, nullptr), "subscribe");
  check(natsConnection_Flush(responder), "responder flush");
  const int reps = opt.quick ? 5 : 7;
  const auto window = opt.quick ? 3s : 4s;
  const int parked_flood = 100000;
  const int hung_flood = 10000;
  enum scenario { none, parked, hung };
  struct p99s {
    double get_ms;
    double request_ms;
  };
  auto run = [&](scenario sc) -> p99s {
    auto cfg = base_settings(healthy.url());
    cfg.max_parked = parked_flood;
    std::unique_ptr<nats_server> hung_srv;
    std::string sick;
    if (sc == parked) {
      sick = "nats://127.0.0.1:" + std::to_string(nats_server::free_port()); // nothing listens
    } else if (sc == hung) {
      hung_srv = std::make_unique<nats_server>(server_options{false, 0});
      sick = hung_srv->url();
    }
    p99s out{};
    {
      natsvisor::connection_service svc{sys, cfg};
      natsvisor::outgoing ping{"bench.iso", "x", {}};
      // Through the blocking facade, as an application thread would.
      auto get = [&] { return static_cast<bool>(svc.get_connection()); };
      auto request = [&] { return static_cast<bool>(svc.request(ping, 2s)); };
      if (!get() || !request())
        die("isolation: the healthy URL failed at warm-up");
      if (sc == hung) {
        if (!svc.get_connection(sick))
          die("isolation: the URL to hang failed at warm-up");
        hung_srv->pause();
      }
      std::thread flooder;
      if (sc != none)
        flooder = std::thread([&] {
          caf::scoped_actor f{sys};
          natsvisor::outgoing m{"bench.sick", "x", {}};
          for (int i = 0, n = sc == parked ? parked_flood : hung_flood; i < n; ++i)
            f->send(svc.api(), natsvisor::req_atom_v, sick, m, caf::timespan{1s});
        });
      // Probes at a fixed rate, each timed from when it was due (not from when the previous one
      // returned): a stall of the healthy URL then counts once per probe it delayed, so that p99
      // sees it (a back-to-back loop would take one slow sample per stall).
      std::vector<double> gets, requests;
      const auto interval = 5ms;
      auto start = clk::now();
      for (int i = 0; start + i * interval < start + window; ++i) {
        auto due = start + i * interval;
        std::this_thread::sleep_until(due);
        if (i % 2 == 0) {
          if (!get())
            die("isolation: get_connection of the healthy URL failed");
          gets.push_back(ms_of(clk::now() - due));
        } else {
          if (!request())
            die("isolation: a request on the healthy URL failed");
          requests.push_back(ms_of(clk::now() - due));
        }
      }
      if (flooder.joinable())
        flooder.join();
      if (hung_srv)
        hung_srv->resume(); // closing waits for nats.c's reconnect attempt otherwise
      out = {percentile(gets, 99), percentile(requests, 99)};
    }
    return out;
  };
  std::vector<double> get_a, get_b, get_c, req_a, req_b, req_c;
  auto variant = [&](scenario sc, std::vector<double>& g, std::vector<double>& r) {
    return [&, sc]() {
      auto x = run(sc);
      g.push_back(x.get_ms);
      r.push_back(x.request_ms);
      return x.get_ms;
    };
  };
  alternate(reps, {variant(none, get_a, req_a), variant(parked, get_b, req_b),
                   variant(hung, get_c, req_c)});
  natsSubscription_Destroy(echo);
  natsConnection_Destroy(responder);
  auto ga = median(get_a), gb = median(get_b), gc = median(get_c);
  auto ra = median(req_a), rb = median(req_b), rc = median(req_c);
  res.put("isolation.healthy_get_p99_ms", ga, "ms");
  res.put("isolation.healthy_get_p99_parked_ms", gb, "ms");
  res.put("isolation.healthy_get_p99_hung_ms", gc, "ms");
  res.put("isolation.healthy_request_p99_ms", ra, "ms");
  res.put("isolation.healthy_request_p99_parked_ms", rb, "ms");
  res.put("isolation.healthy_request_p99_hung_ms", rc, "ms");
  auto get_ratio = std::max(gb, gc) / ga;
  auto req_ratio = std::max(rb, rc) / ra;
  res.target("isolation.healthy_get_p99_ratio", get_ratio, "x", get_ratio <= 2.0, "<= 2");
  res.target("isolation.healthy_request_p99_ratio", req_ratio, "x", req_ratio <= 2.0, "<= 2");
}

// ================================================================================================

void write_json(const options& opt, const results& res, double seconds) {
  // Nested objects from the dotted names: {"get_connection": {"cached_ops": ...}, ...}.
  std::map<std::string, std::map<std::string, double>> groups;
  for (auto& [k, v] : res.numbers) {
    auto dot = k.find('.');
    groups[k.substr(0, dot)][k.substr(dot + 1)] = v;
  }
  std::ostringstream o;
  o << "{\n";
  o << "  \"machine\": {\"cpu_model\": \"" << json_escape(cpu_model())
    << "\", \"cores\": " << std::thread::hardware_concurrency() << "},\n";
  o << "  \"date\": \"" << utc_now() << "\",\n";
  o << "  \"git_commit\": \"" << json_escape(opt.git_commit) << "\",\n";
  o << "  \"mode\": \"" << (opt.quick ? "quick" : "full") << "\",\n";
  o << "  \"caf_threads\": " << opt.caf_threads << ",\n";
  o << "  \"duration_s\": " << json_num(seconds) << ",\n";
  for (auto& [g, kv] : groups) {
    o << "  \"" << g << "\": {";
    bool first = true;
    for (auto& [k, v] : kv) {
      o << (first ? "\n" : ",\n") << "    \"" << k << "\": " << json_num(v);
      first = false;
    }
    o << "\n  },\n";
  }
  o << "  \"targets\": {";
  bool first = true;
  for (auto& r : res.rows)
    if (r.pass >= 0) {
      o << (first ? "\n" : ",\n") << "    \"" << r.name << "\": {\"target\": \""
        << json_escape(r.target) << "\", \"pass\": " << (r.pass ? "true" : "false") << "}";
      first = false;
    }
  o << "\n  },\n  \"notes\": [";
  for (size_t i = 0; i < res.notes.size(); ++i)
    o << (i ? ", " : "") << "\"" << json_escape(res.notes[i]) << "\"";
  o << "]\n}\n";
  std::ofstream f(opt.out);
  f << o.str();
  if (!f)
    die("cannot write " + opt.out);
}

void print_table(const results& res) {
  std::printf("\n%-52s %14s %-6s  %s\n", "figure (median of >= 5)", "value", "unit", "target");
  std::printf("%s\n", std::string(100, '-').c_str());
  for (auto& r : res.rows) {
    std::string t = r.pass < 0 ? "" : std::string(r.pass ? "PASS  " : "MISS  ") + r.target;
    std::printf("%-52s %14s %-6s  %s\n", r.name.c_str(), fmt_num(r.value).c_str(), r.unit.c_str(),
                t.c_str());
  }
  for (auto& n : res.notes)
    std::printf("note: %s\n", n.c_str());
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--quick")
      opt.quick = true;
    else if (a == "--out")
      opt.out = value();
    else if (a == "--timeline")
      opt.timeline = value();
    else if (a == "--git-commit")
      opt.git_commit = value();
    else if (a == "--only")
      opt.only = value();
    else if (a == "--caf-threads")
      opt.caf_threads = std::atoi(value().c_str());
    else if (a.rfind("--scheduler.", 0) == 0 || a.rfind("--work-stealing.", 0) == 0)
      opt.caf_args.push_back(a); // experiments with CAF's scheduler, e.g. --scheduler.policy=sharing
    else
      die("unknown argument " + a
          + " (usage: natsvisor_bench [--quick] [--out F] [--timeline F] [--git-commit SHA])");
  }
  auto started = clk::now();
  results res;
  {
    natsvisor::config cfg;
    if (opt.caf_threads > 0)
      cfg.set("scheduler.max-threads", static_cast<size_t>(opt.caf_threads));
    if (!opt.caf_args.empty())
      if (auto err = cfg.parse(opt.caf_args); err)
        die("CAF options: " + cfg.render(err));
    caf::actor_system sys{cfg};
    auto want = [&](const char* s) { return opt.only.empty() || opt.only == s; };
    // First: its resident-memory figures mean something only in a process whose heap has not
    // grown yet (after the scale section, the freed heap absorbs the whole overload).
    if (want("overload"))
      bench_overload(sys, opt, res);
    if (want("getconn"))
      bench_get_connection(sys, opt, res);
    if (want("publish"))
      bench_publish(sys, opt, res);
    if (want("request"))
      bench_request(sys, opt, res);
    if (want("recovery"))
      bench_recovery(sys, opt, res);
    if (want("scale"))
      bench_scale(sys, opt, res);
    if (want("subs"))
      bench_subs(sys, opt, res);
    if (want("isolation"))
      bench_isolation(sys, opt, res);
  }
  nats_Close();
  auto took = secs(clk::now() - started);
  print_table(res);
  std::printf("\n%s mode, %.1f s; JSON: %s\n", opt.quick ? "quick" : "full", took, opt.out.c_str());
  write_json(opt, res, took);
  return 0;
}
