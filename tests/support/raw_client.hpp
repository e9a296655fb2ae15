#pragma once

// A plain nats.c connection for a test's own view of the servers, never natsvisor's: publishers,
// responders and observers that count what really arrived.

#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

namespace natsvisor::testing {

struct raw_connection {
  /// Connects to `url` (one server or a comma-separated list, kept in order) and keeps
  /// reconnecting for as long as a test may keep a node down. `ping_interval_ms` > 0 makes it
  /// notice a hung (SIGSTOPped) server and move on, as natsvisor does.
  explicit raw_connection(const std::string& url, const char* name = "test-raw",
                          int ping_interval_ms = 0) {
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
    natsOptions_SetMaxReconnect(opts, 100000); // a node may be gone for a minute
    natsOptions_SetReconnectWait(opts, 100);
    natsOptions_SetTimeout(opts, 2000);
    // Counted, so a test can tell whether its server announced lame duck mode at all.
    natsOptions_SetLameDuckModeCB(
      opts, [](natsConnection*, void* self) { ++static_cast<raw_connection*>(self)->lame_ducks; },
      this);
    // Kept without asking nats.c, whose status call blocks during a reconnect attempt.
    natsOptions_SetDisconnectedCB(
      opts, [](natsConnection*, void* self) { static_cast<raw_connection*>(self)->connected = false; },
      this);
    natsOptions_SetReconnectedCB(
      opts, [](natsConnection*, void* self) { static_cast<raw_connection*>(self)->connected = true; },
      this);
    natsOptions_SetClosedCB(
      opts, [](natsConnection*, void* self) { static_cast<raw_connection*>(self)->closed = true; },
      this);
    if (ping_interval_ms > 0) {
      natsOptions_SetPingInterval(opts, ping_interval_ms);
      natsOptions_SetMaxPingsOut(opts, 2);
    }
    auto s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    INFO(url << ": " << natsStatus_GetText(s) << ": " << nats_GetLastError(nullptr));
    REQUIRE(s == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  }
  ~raw_connection() {
    jsCtx_Destroy(js);
    // nats.c runs the callbacks above on its own thread, in order, and may run the disconnected
    // and closed ones after Destroy returned: they refer to this object. So the connection is
    // closed first and destroyed once the closed callback, the last, has run.
    natsConnection_Close(nc);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!closed && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    natsConnection_Destroy(nc);
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<int> lame_ducks{0}; ///< lame duck mode announcements nats.c reported
  std::atomic<bool> connected{true}; ///< false from a disconnect until the reconnect
  std::atomic<bool> closed{false};
};

/// Counts what a raw subscription received when its payloads are sequence numbers; other
/// payloads (a test's warm-up messages) are only counted. Use it as the closure of
/// `natsConnection_Subscribe(..., core_counter::on_msg, &counter)`, and declare it before the
/// connection, so that it outlives the subscription's delivery thread.
struct core_counter {
  std::mutex mtx;
  std::set<uint64_t> seen;
  uint64_t duplicates = 0;
  std::atomic<int> others{0};
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto self = static_cast<core_counter*>(closure);
    auto data = natsMsg_GetData(msg);
    if (natsMsg_GetDataLength(msg) == 0 || !std::isdigit(static_cast<unsigned char>(data[0]))) {
      ++self->others;
    } else {
      auto seq = std::strtoull(data, nullptr, 10);
      std::lock_guard<std::mutex> guard{self->mtx};
      if (!self->seen.insert(seq).second)
        ++self->duplicates;
    }
    natsMsg_Destroy(msg);
  }
  bool saw(uint64_t seq) {
    std::lock_guard<std::mutex> guard{mtx};
    return seen.count(seq) > 0;
  }
  size_t count() {
    std::lock_guard<std::mutex> guard{mtx};
    return seen.size();
  }
};

} // namespace natsvisor::testing
