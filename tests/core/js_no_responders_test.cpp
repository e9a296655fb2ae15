// The decision for a JetStream publish answered "no responders" (nats/protocol.hpp): a stream
// leader election is transient, a missing stream is permanent, and nothing waits past its
// deadline. Plus the lookup that tells the two apart.
#include "nats/protocol.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using natsvisor::js_no_responders_verdict;
using natsvisor::on_js_no_responders;

namespace {

const natsvisor::steady_time t0 = natsvisor::steady_time{} + std::chrono::hours(1000);

} // namespace

TEST_CASE("no responders to a publish with no stream for its subject is no_stream at once",
          "[jetstream]") {
  CHECK(on_js_no_responders(false, t0, t0 + 5s, 200ms) == js_no_responders_verdict::no_stream);
  CHECK(on_js_no_responders(false, t0, t0, 200ms) == js_no_responders_verdict::no_stream);
}

TEST_CASE("no responders while the stream exists is retried until the deadline and then "
          "unavailable",
          "[jetstream]") {
  for (std::optional<bool> exists : {std::optional<bool>{true}, std::optional<bool>{}}) {
    INFO("stream exists: " << (exists ? "yes" : "cannot be known"));
    CHECK(on_js_no_responders(exists, t0, t0 + 5s, 200ms) == js_no_responders_verdict::retry);
    CHECK(on_js_no_responders(exists, t0 + 4799ms, t0 + 5s, 200ms)
          == js_no_responders_verdict::retry);
    // No retry that could not be answered before the deadline.
    CHECK(on_js_no_responders(exists, t0 + 4800ms, t0 + 5s, 200ms)
          == js_no_responders_verdict::unavailable);
    CHECK(on_js_no_responders(exists, t0 + 6s, t0 + 5s, 200ms)
          == js_no_responders_verdict::unavailable);
  }
}

TEST_CASE("the stream lookup asks for the subject and reads whether a stream captures it",
          "[jetstream]") {
  CHECK(natsvisor::stream_names_request("orders.new") == R"({"subject":"orders.new"})");
  CHECK(natsvisor::stream_names_request(R"(a"b\c)") == R"({"subject":"a\"b\\c"})");
  using natsvisor::names_a_stream;
  CHECK(names_a_stream(R"({"type":"io.nats.jetstream.api.v1.stream_names_response","total":1,)"
                       R"("offset":0,"limit":1024,"streams":["ORDERS"]})")
        == std::optional<bool>{true});
  CHECK(names_a_stream(R"({"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,)"
                       R"("offset":0,"limit":1024,"streams":null})")
        == std::optional<bool>{false});
  CHECK_FALSE(names_a_stream(R"({"type":"x","error":{"code":503,"err_code":10008,)"
                             R"("description":"JetStream system temporarily unavailable"}})"));
  CHECK_FALSE(names_a_stream(""));
  CHECK_FALSE(names_a_stream("garbage"));
}
