// old_vs_new: the same job done twice.
//
//   OLD: raw nats.c, "connect, use, close" repeated inside a function called at every call site.
//   NEW: natsvisor::connection_service owns the connection; callers get a handle (reused),
//        a scope (released however the block ends) or a JetStream handle.
//
// Usage: old_vs_new [nats://host:port]   (else $NATS_URL, else nats://127.0.0.1:4222)
// Exits 1 with a clear message when no server is reachable (never hangs: nats.c's connect
// fails fast, and the service answers with a typed error after request_timeout = 3 s).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nats/nats.h>

#include "caf/all.hpp"

#include "config/url.hpp"
#include "api/connection_service.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// OLD: every call pays for a TCP connect + handshake, a flush round trip and a close.
// ---------------------------------------------------------------------------------------------
bool old_publish(const std::string& url, const char* subject, const char* payload) {
  auto t0 = clock_type::now();
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s != NATS_OK) {
    std::printf("  old: cannot connect to %s: %s\n", natsvisor::redact(url).c_str(), natsStatus_GetText(s));
    return false;
  }
  s = natsConnection_PublishString(nc, subject, payload);
  if (s == NATS_OK)
    s = natsConnection_Flush(nc);
  natsConnection_Destroy(nc);  // close + free, every single time
  std::printf("  old: connect + publish + flush + close on '%s': %s (%.2f ms)\n", subject,
              natsStatus_GetText(s), ms_since(t0));
  return s == NATS_OK;
}

// ---------------------------------------------------------------------------------------------
// NEW: the service hands out a shared handle; the connection stays open between calls.
// ---------------------------------------------------------------------------------------------
bool new_publish(const natsvisor::connection_handle& conn, const char* subject,
                 const char* payload) {
  auto t0 = clock_type::now();
  natsStatus s = natsConnection_PublishString(conn.get(), subject, payload);
  std::printf("  new: publish on reused handle (generation %llu) '%s': %s (%.3f ms)\n",
              static_cast<unsigned long long>(conn.generation()), subject, natsStatus_GetText(s),
              ms_since(t0));
  return s == NATS_OK;
}

} // namespace

int main(int argc, char** argv) {
  std::string url = "nats://127.0.0.1:4222";
  if (argc > 1)
    url = argv[1];
  else if (const char* env = std::getenv("NATS_URL"); env != nullptr && *env != '\0')
    url = env;
  std::printf("NATS URL: %s\n\n", natsvisor::redact(url).c_str());

  std::printf("== OLD pattern: raw nats.c, connect/publish/flush/close per call ==\n");
  for (int i = 1; i <= 3; ++i) {
    auto subject = "demo.old." + std::to_string(i);
    if (!old_publish(url, subject.c_str(), "hello from the old pattern")) {
      std::printf("\nNo NATS server reachable at %s.\n"
                  "Start one (e.g. `nats-server -js`) or run scripts/demo, which starts its own.\n",
                  url.c_str());
      return 1;
    }
  }

  std::printf("\n== NEW pattern: natsvisor::connection_service ==\n");
  natsvisor::config cfg;  // registers natsvisor's message types and error category
  caf::actor_system sys{cfg};
  natsvisor::settings settings;
  settings.nats_url = url;
  settings.request_timeout = std::chrono::seconds(3);  // typed error instead of a long wait
  settings.connection_timeout = std::chrono::seconds(2);
  settings.log_level = "warn";
  int rc = 0;
  {
    natsvisor::connection_service svc{sys, settings};

    // 1. get_connection: ask once, reuse the handle for every publish.
    auto t0 = clock_type::now();
    auto conn = svc.get_connection();
    if (!conn) {
      std::printf("  new: no connection: %s\n", natsvisor::describe(conn.error()).c_str());
      return 1;
    }
    std::printf("  new: get_connection -> %s, generation %llu (%.2f ms, first connect)\n",
                conn->url().c_str(), static_cast<unsigned long long>(conn->generation()),
                ms_since(t0));
    for (int i = 1; i <= 3; ++i) {
      auto subject = "demo.new." + std::to_string(i);
      if (!new_publish(*conn, subject.c_str(), "hello from the new pattern"))
        rc = 1;
    }
    natsConnection_Flush(conn->get());  // one round trip for all of them, not one per call

    // Asking again is cheap: the same pooled connection comes back.
    t0 = clock_type::now();
    auto again = svc.get_connection();
    if (again)
      std::printf("  new: get_connection again -> same connection: %s (%.3f ms)\n",
                  again->get() == conn->get() ? "yes" : "no", ms_since(t0));

    // 2. with_connection: the C++ form of `async with connection_scope()`.
    auto err = svc.with_connection([](const natsvisor::connection_handle& h) {
      natsStatus s = natsConnection_PublishString(h.get(), "demo.new.scoped", "inside a scope");
      if (s == NATS_OK)
        s = natsConnection_Flush(h.get());
      std::printf("  new: with_connection scope: publish + flush: %s\n", natsStatus_GetText(s));
    });
    if (err) {
      std::printf("  new: with_connection failed: %s\n", natsvisor::describe(err).c_str());
      rc = 1;
    }

    // 3. get_jetstream: a JetStream context cached per connection generation.
    auto js = svc.get_jetstream();
    if (!js) {
      // Not fatal here: the server may simply run without -js.
      std::printf("  new: get_jetstream: %s\n", natsvisor::describe(js.error()).c_str());
    } else {
      jsAccountInfo* info = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      natsStatus s = js_GetAccountInfo(&info, js->get(), nullptr, &jerr);
      if (s == NATS_OK)
        std::printf("  new: get_jetstream -> context on generation %llu; account has %lld "
                    "stream(s)\n",
                    static_cast<unsigned long long>(js->generation()),
                    static_cast<long long>(info->Streams));
      else
        std::printf("  new: get_jetstream -> context, but account info failed: %s\n",
                    natsStatus_GetText(s));
      jsAccountInfo_Destroy(info);
    }

    if (auto st = svc.status(); st)
      for (auto& u : *st)
        std::printf("  new: status: %s %s generation %llu, out_msgs %llu\n", u.url.c_str(),
                    natsvisor::to_string(u.state), static_cast<unsigned long long>(u.generation),
                    static_cast<unsigned long long>(u.out_msgs));
    // Leaving the block: handles are released, the service closes the connection once.
  }
  std::printf("\ndone (%s)\n", rc == 0 ? "ok" : "with errors");
  return rc;
}
