#include "actors/link_gate.hpp"

#include <catch2/catch.hpp>

using natsvisor::gate;
using natsvisor::gate_action;
using natsvisor::link_news;
using natsvisor::nats_call;
using natsvisor::news_of;

namespace {

constexpr nats_call every_call[] = {nats_call::publish,   nats_call::request, nats_call::health,
                                    nats_call::stats,     nats_call::flush,
                                    nats_call::subscribe, nats_call::unsubscribe};

} // namespace

TEST_CASE("every nats.c call is made while nats.c does not reconnect", "[core][link_gate]") {
  for (auto c : every_call)
    CHECK(gate(c, false) == gate_action::call);
}

TEST_CASE("no nats.c call is made while nats.c reconnects", "[core][link_gate]") {
  for (auto c : every_call)
    CHECK(gate(c, true) != gate_action::call);
}

TEST_CASE("while nats.c reconnects each call has its own answer that blocks nobody",
          "[core][link_gate]") {
  // Publishes go back to the supervisor (it holds them for the connection's return).
  CHECK(gate(nats_call::publish, true) == gate_action::bounce);
  // Requests stay here with their deadline running, sent when nats.c is back.
  CHECK(gate(nats_call::request, true) == gate_action::hold);
  CHECK(gate(nats_call::health, true) == gate_action::unhealthy);
  CHECK(gate(nats_call::stats, true) == gate_action::last_stats);
  CHECK(gate(nats_call::flush, true) == gate_action::skip);
  CHECK(gate(nats_call::subscribe, true) == gate_action::later);
  CHECK(gate(nats_call::unsubscribe, true) == gate_action::later);
}

TEST_CASE("the supervisor hears of a changed link once per change", "[core][link_gate]") {
  CHECK(news_of(false, false) == link_news::none);
  CHECK(news_of(true, true) == link_news::none);
  CHECK(news_of(false, true) == link_news::lost);
  CHECK(news_of(true, false) == link_news::regained);
  // A disconnect the flag no longer shows (lost and regained between two looks) is a blip; one
  // seen while the actor says it reconnects is part of that outage.
  CHECK(news_of(false, false, true) == link_news::blip);
  CHECK(news_of(true, true, true) == link_news::none);
  CHECK(news_of(true, false, true) == link_news::regained);
  CHECK(news_of(false, true, true) == link_news::lost);
}
