// old_vs_new: the same job done twice.
//
//   OLD: raw nats.c, "connect, use, close" repeated inside a function called at every call site.
//   NEW: natsvisor::connection_service owns the connection; callers get a handle (reused),
//        a scope (released however the block ends), a JetStream handle, an exclusive lease
//        from the pool (returned when it goes out of scope), or skip nats.c altogether and
//        use the message path: publish, request (answered by an actor subscribed through
//        subscribe), js_publish.
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
#include "example_support.hpp"
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
    std::printf("  old: cannot connect to %s: %s\n", natsvisor::redact(url).c_str(),
                natsStatus_GetText(s));
    return false;
  }
  s = natsConnection_PublishString(nc, subject, payload);
  if (s == NATS_OK)
    s = natsConnection_Flush(nc);
  natsConnection_Destroy(nc); // close + free, every single time
  std::printf("  old: connect + publish + flush + close on '%s': %s (%.2f ms)\n", subject,
              natsStatus_GetText(s), ms_since(t0));
  return s == NATS_OK;
}

// OLD request/reply: again a connection per call.
bool old_request(const std::string& url, const char* subject, const char* payload) {
  auto t0 = clock_type::now();
  natsConnection* nc = nullptr;
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url.c_str());
  if (s == NATS_OK)
    s = natsConnection_RequestString(&reply, nc, subject, payload, 2000);
  std::printf("  old: connect + request + close on '%s': %s%s%s (%.2f ms)\n", subject,
              natsStatus_GetText(s), reply ? ", reply " : "", reply ? natsMsg_GetData(reply) : "",
              ms_since(t0));
  natsMsg_Destroy(reply);
  natsConnection_Destroy(nc);
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

// NEW: a responder for the message path. It never touches nats.c: requests arrive in its
// mailbox as nats_message values (subscribed through svc.subscribe), and it answers with a
// fire-and-forget publish to the reply subject.
caf::behavior responder(caf::event_based_actor* self, caf::actor svc) {
  return {
    [self, svc](const natsvisor::nats_message& m) {
      if (!m.reply.empty())
        natsvisor::publish(self, svc, {m.reply, "pong: " + m.payload, {}});
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  std::string url = natsvisor_examples::url_from(argc, argv);
  std::printf("NATS URL: %s\n\n", natsvisor::redact(url).c_str());

  std::printf("== OLD pattern: raw nats.c, connect/publish/flush/close per call ==\n");
  for (int i = 1; i <= 3; ++i) {
    auto subject = "demo.old." + std::to_string(i);
    if (!old_publish(url, subject.c_str(), "hello from the old pattern")) {
      std::printf("\nNo NATS server reachable at %s.\n"
                  "Start one (e.g. `nats-server -js`) or run scripts/demo, which starts its own.\n",
                  natsvisor::redact(url).c_str());
      return 1;
    }
  }

  std::printf("\n== NEW pattern: natsvisor::connection_service ==\n");
  natsvisor::config cfg; // registers natsvisor's message types and error category
  caf::actor_system sys{cfg};
  natsvisor::settings settings;
  settings.nats_url = url;
  settings.request_timeout = std::chrono::seconds(3); // typed error instead of a long wait
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
    natsConnection_Flush(conn->get()); // one round trip for all of them, not one per call

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

    // 4. lease: an exclusive connection from the pool, returned when `l` goes out of scope
    //    (also on an exception). Nobody else publishes on it meanwhile, so a flush here
    //    waits for this code's messages only.
    auto pool_active = [&svc] {
      auto st = svc.status();
      return st && !st->empty() ? static_cast<unsigned long long>(st->front().pool.active) : 0ULL;
    };
    {
      t0 = clock_type::now();
      auto l = svc.lease();
      if (!l) {
        std::printf("  new: lease failed: %s\n", natsvisor::describe(l.error()).c_str());
        rc = 1;
      } else {
        natsStatus s = natsConnection_PublishString(l->get(), "demo.new.leased", "on a lease");
        if (s == NATS_OK)
          s = natsConnection_Flush(l->get());
        std::printf("  new: lease #%llu (%.2f ms): publish + flush on an exclusive pooled "
                    "connection: %s; leases active: %llu\n",
                    static_cast<unsigned long long>(l->id()), ms_since(t0), natsStatus_GetText(s),
                    pool_active());
        rc = s == NATS_OK ? rc : 1;
      }
    } // the lease goes back to the pool here
    std::printf("  new: lease returned by leaving its scope; leases active: %llu\n", pool_active());

    // 5. the message path: no nats.c at the call site, and it works across restarts.
    auto echo = sys.spawn(responder, svc.actor());
    if (auto id = svc.subscribe("demo.echo", echo); !id) {
      std::printf("  new: subscribe failed: %s\n", natsvisor::describe(id.error()).c_str());
      rc = 1;
    } else {
      std::printf("  new: subscribe('demo.echo', responder actor) -> subscription %llu\n",
                  static_cast<unsigned long long>(*id));
      old_request(url, "demo.echo", "ping (old)"); // the same responder, the old way
      for (int i = 1; i <= 3; ++i) {
        t0 = clock_type::now();
        auto reply = svc.request({"demo.echo", "ping " + std::to_string(i) + " (new)", {}},
                                 std::chrono::seconds(2));
        if (reply)
          std::printf("  new: request('demo.echo') -> reply '%s' (%.2f ms, shared connection)\n",
                      reply->payload.c_str(), ms_since(t0));
        else
          std::printf("  new: request failed: %s\n", natsvisor::describe(reply.error()).c_str());
        rc = reply ? rc : 1;
      }
    }
    if (auto perr = svc.publish({"demo.new.msgpath", "via the message path", {}}); perr) {
      std::printf("  new: publish failed: %s\n", natsvisor::describe(perr).c_str());
      rc = 1;
    } else {
      std::printf("  new: publish('demo.new.msgpath') -> taken by nats.c\n");
    }
    if (js) {
      // js_publish needs a stream that captures the subject.
      svc.with_jetstream([](const natsvisor::jetstream_handle& h) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = "DEMO_NEW";
        const char* subjects[] = {"demo.js.>"};
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        js_AddStream(nullptr, h.get(), &sc, nullptr, nullptr); // "exists" is fine too
      });
      auto ack = svc.js_publish({"demo.js.order", "{\"order\":1}", {}});
      if (ack)
        std::printf("  new: js_publish('demo.js.order') -> ack: stream %s, sequence %llu\n",
                    ack->stream.c_str(), static_cast<unsigned long long>(ack->sequence));
      else
        std::printf("  new: js_publish failed: %s\n", natsvisor::describe(ack.error()).c_str());
      rc = ack ? rc : 1;
    }
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown); // its subscription ends too

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
