#pragma once

// A plain nats.c connection for a test's own view of the servers, never natsvisor's: publishers,
// responders and observers that count what really arrived.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
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
      opts, [](natsConnection*, void* st) { ++static_cast<shared_state*>(st)->lame_ducks; },
      state_.get());
    natsOptions_SetDisconnectedCB(
      opts, [](natsConnection*, void* st) { static_cast<shared_state*>(st)->connected = false; },
      state_.get());
    natsOptions_SetReconnectedCB(
      opts, [](natsConnection*, void* st) { static_cast<shared_state*>(st)->connected = true; },
      state_.get());
    natsOptions_SetClosedCB(
      opts, [](natsConnection*, void* st) { static_cast<shared_state*>(st)->closed = true; },
      state_.get());
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
    // and closed ones after Destroy returned. So the connection is closed first, and what the
    // callbacks write is freed once the closed callback, the last, has run (or else left).
    natsConnection_Close(nc);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!state_->closed && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    natsConnection_Destroy(nc);
    if (!state_->closed)
      (void)state_.release(); // a callback may still write it: leaked rather than freed
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  /// What nats.c's callbacks write, apart from the object (see the destructor).
  struct shared_state {
    std::atomic<int> lame_ducks{0};
    std::atomic<bool> connected{true};
    std::atomic<bool> closed{false};
  };
  std::unique_ptr<shared_state> state_ = std::make_unique<shared_state>();

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<int>& lame_ducks = state_->lame_ducks; ///< lame duck mode announcements nats.c reported
  /// False from a disconnect until the reconnect (kept without asking nats.c, whose status call
  /// blocks during a reconnect attempt).
  std::atomic<bool>& connected = state_->connected;
};

} // namespace natsvisor::testing
