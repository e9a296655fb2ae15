#pragma once

// Whether the connection actor may call nats.c now, and what it does instead when it may not.
//
// While nats.c reconnects, its reconnect thread holds the connection's lock for whole attempts:
// against a hung server (SIGSTOP: the kernel still completes the TCP handshake) each attempt
// waits up to connection_timeout for the server's INFO. Every nats.c call that takes the lock
// (publish, flush, subscribe, unsubscribe, statistics) would stall the actor, and with it every
// deadline it keeps. nats.c's disconnected callback (posted by the reconnect thread before its
// first attempt, which follows the reconnect_wait sleep when only one server is left to try)
// sets a flag before it sends its message; the actor reads the flag before each call and,
// while it is set, does what this decides instead. Pure: tested in tests/core.

#include <cstdint>

namespace natsvisor {

/// What the connection actor is about to do with nats.c.
enum class nats_call : uint8_t {
  publish,     ///< a message-path publish (one, a batch, a packed batch)
  request,     ///< a request or JetStream publish awaiting its answer on the reply subscription
  health,      ///< a health check (a round trip through the own inbox)
  stats,       ///< nats.c's traffic counters
  flush,       ///< pushing buffered writes out at once
  subscribe,   ///< a message-path subscription
  unsubscribe, ///< ending one
};

/// What it does.
enum class gate_action : uint8_t {
  call,       ///< call nats.c
  bounce,     ///< hand it back to the supervisor, which keeps it until the connection is back
  hold,       ///< keep it (its deadline runs) and send it once nats.c reconnected
  unhealthy,  ///< answer at once: not healthy, nats.c reconnects
  last_stats, ///< answer with the counters read last
  skip,       ///< nothing: nats.c sends its reconnect buffer once it reconnected
  later,      ///< answer now, do it once nats.c reconnected (the supervisor subscribes again)
};

constexpr gate_action gate(nats_call call, bool reconnecting) noexcept {
  if (!reconnecting)
    return gate_action::call;
  switch (call) {
    case nats_call::publish: return gate_action::bounce;
    case nats_call::request: return gate_action::hold;
    case nats_call::health: return gate_action::unhealthy;
    case nats_call::stats: return gate_action::last_stats;
    case nats_call::flush: return gate_action::skip;
    case nats_call::subscribe:
    case nats_call::unsubscribe: return gate_action::later;
  }
  return gate_action::skip;
}

/// What changed between what the actor last told the supervisor and what the flag says now.
/// `blip`: lost and regained between two looks (a hung node of a list is left for the next one
/// in milliseconds, while the actor was busy): both are told, or watchers would never learn of it.
enum class link_news : uint8_t { none, lost, regained, blip };

/// `unseen_disconnect`: nats.c counted a disconnect since the actor last told one.
constexpr link_news news_of(bool told_reconnecting, bool reconnecting,
                            bool unseen_disconnect = false) noexcept {
  if (told_reconnecting != reconnecting)
    return reconnecting ? link_news::lost : link_news::regained;
  if (!reconnecting && unseen_disconnect)
    return link_news::blip;
  return link_news::none;
}

} // namespace natsvisor
