// Isolation between URLs: a URL whose server hangs, flooded with parked requests, must not slow
// down another URL's requests (each URL has its own supervisor actor behind a thin router).

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "nats_server.hpp"
#include "raw_client.hpp"
#include "service_fixture.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

void echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  if (auto reply = natsMsg_GetReply(msg))
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
}

// Resumes a paused server however the test ends, before the service closes its connection.
struct resume_at_exit {
  nats_server& server;
  ~resume_at_exit() { server.resume(); }
};

} // namespace

TEST_CASE("a hung URL flooded with parked requests leaves another URL fast", "[isolation]") {
  nats_server healthy;
  nats_server hung;
  auto s = fast_settings(healthy.url());
  s.request_timeout = 2s; // the flood expires inside the measured window
  s.max_parked = 100000;
  s.log_level = "error"; // 100k fire-and-forget requests answered with errors: not logged
  service_fixture f{s};
  raw_connection responder{healthy.url(), "iso-echo"};
  natsSubscription* sub = nullptr;
  REQUIRE(natsConnection_Subscribe(&sub, responder.nc, "iso.echo", echo, nullptr) == NATS_OK);
  REQUIRE(natsConnection_Flush(responder.nc) == NATS_OK);
  outgoing ping{"iso.echo", "x", {}};
  REQUIRE(f.svc->request(ping, 2s));
  resume_at_exit guard{hung};
  hung.pause();
  // The flood: requests for the hung URL, parked by its supervisor while its first connect waits
  // for a server that accepts the TCP connection and answers nothing.
  caf::scoped_actor flooder{f.sys};
  outgoing sick{"iso.sick", "x", {}};
  const int flood = 100000;
  for (int i = 0; i < flood; ++i)
    flooder->send(f.svc->api(), req_atom_v, hung.url(), sick, caf::timespan{1s});
  // Meanwhile (and while the flood is parked, then expires), the healthy URL serves at once.
  std::vector<double> gets;
  std::vector<double> requests;
  auto until = clock_type::now() + 4s;
  while (clock_type::now() < until) {
    auto t0 = clock_type::now();
    REQUIRE(f.svc->get_connection());
    gets.push_back(ms_since(t0));
    auto t1 = clock_type::now();
    REQUIRE(f.svc->request(ping, 2s));
    requests.push_back(ms_since(t1));
  }
  auto worst_get = *std::max_element(gets.begin(), gets.end());
  auto worst_request = *std::max_element(requests.begin(), requests.end());
  INFO(gets.size() << " rounds; slowest get_connection " << worst_get << " ms, slowest request "
                   << worst_request << " ms");
  CHECK(worst_get < 500.0);
  CHECK(worst_request < 500.0);
  natsSubscription_Destroy(sub);
}
