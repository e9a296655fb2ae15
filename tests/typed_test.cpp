// The connection service's typed protocol (api/protocol.hpp) against a real server: the generic
// ask for actors and the generic call of the blocking facade serve every kind of request.

#include <catch2/catch.hpp>

#include "caf/all.hpp"

#include "nats_server.hpp"
#include "service_fixture.hpp"

#include "api/protocol.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

TEST_CASE("the typed handle answers through the generic ask", "[typed]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  caf::scoped_actor self{f.sys};
  auto svc = f.svc->api();
  connection_handle conn;
  ask(self.ptr(), svc, get_conn_atom_v, std::string{})
    .receive([&](connection_handle& h) { conn = std::move(h); },
             [](caf::error& err) { FAIL(describe(err)); });
  CHECK(conn);
  status_report report;
  ask(self.ptr(), svc, status_atom_v)
    .receive([&](status_report& r) { report = std::move(r); },
             [](caf::error& err) { FAIL(describe(err)); });
  REQUIRE(report.size() == 1);
  CHECK(report[0].state == connection_state::connected);
  bool published = false;
  ask(self.ptr(), svc, pub_atom_v, std::string{}, outgoing{"typed.subject", "x", {}})
    .receive([&] { published = true; }, [](caf::error& err) { FAIL(describe(err)); });
  CHECK(published);
}

TEST_CASE("the blocking facade's call serves any request of the protocol", "[typed]") {
  nats_server server;
  service_fixture f{fast_settings(server.url())};
  auto conn = f.svc->call(get_conn_atom_v, std::string{});
  REQUIRE(conn);
  CHECK(conn->generation() == 1);
  auto health = f.svc->call(health_atom_v, std::string{});
  REQUIRE(health);
  CHECK(health->healthy);
  auto closed = f.svc->call(close_conn_atom_v, std::string{}); // an empty answer: caf::unit_t
  CHECK(closed);
  auto bad = f.svc->call(get_conn_atom_v, std::string{"not a url"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == errc::invalid_url);
}
