// Red-first regression test: nats.c 3.4.1 can fail natsConnection_Connect after it has already
// queued the closed callback. Path: _connect -> (retry on failed connect with a connected
// callback) -> _processOpError(initialConnect) -> natsBuf_Create of the reconnect buffer fails
// -> _close(CLOSED, doCBs) posts ASYNC_CLOSED -> Connect returns an error. Whoever frees the
// callback closure after that error must not free it a second time when the closed callback
// runs. The reconnect buffer allocation fails for real only under AddressSanitizer with
//   ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=256
// (a 1 GiB malloc returns null); without those options the test passes trivially, since nats.c
// then gets its buffer and keeps retrying. Public API only; no server listens on the port.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "caf/all.hpp"

#include "nats_server.hpp"
#include "service_fixture.hpp"

using namespace natsvisor;
using namespace natsvisor::testing;
using namespace std::chrono_literals;

TEST_CASE("a refused first connect with a reconnect buffer nats.c cannot allocate frees its "
          "callbacks once",
          "[regression]") {
  // Nothing listens here: the first attempt is refused at once.
  auto port = nats_server::free_port();
  auto s = fast_settings("nats://127.0.0.1:" + std::to_string(port));
  s.nats.reconnect_buf_size = 1 << 30; // 1 GiB: more than the sanitizer lets malloc return
  s.policy.max_attempts = 1;
  s.policy.base_delay = 50ms;
  s.policy.max_delay = 100ms;
  s.request_timeout = 3s;
  service_fixture f{s};
  auto conn = f.svc->get_connection();
  // No server: whatever the path inside, no connection can be had.
  CHECK_FALSE(conn);
  f.svc->stop();
  // nats.c runs the closed callback on its own thread, possibly after Connect returned and the
  // actor is gone: give it a second (a deadline-bound receive, not a sleep).
  caf::scoped_actor self{f.sys};
  bool waited = false;
  self->receive(caf::after(std::chrono::seconds(1)) >> [&] { waited = true; });
  CHECK(waited);
}
