// The C boundary with nats.c: callback closures and exceptions. No server needed: the callbacks
// are called here exactly as nats.c calls them, including late.

#include <stdexcept>

#include <catch2/catch.hpp>

#include "caf/all.hpp"

#include "api/config.hpp"
#include "nats/callbacks.hpp"
#include "nats/type_ids.hpp"

using namespace std::chrono_literals;

namespace {

// Did the closed callback reach `self` within a short deadline?
bool got_closed(caf::scoped_actor& self) {
  bool got = false;
  self->receive([&](natsvisor::closed_atom) { got = true; }, caf::after(200ms) >> [] {});
  return got;
}

} // namespace

// Defect: natsConnection_Connect can fail after nats.c queued the closed callback. The actor
// freed the callback closure, and the late closed callback freed it again (a double free that
// ASan reported as heap-use-after-free). Closures are numbers now: a late callback finds nothing.
TEST_CASE("a closed callback after a failed connect frees nothing twice", "[regression][callbacks]") {
  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  void* closure = nullptr;
  {
    natsvisor::detail::callback_owner owner{caf::actor_cast<caf::weak_actor_ptr>(self)};
    closure = owner.closure();
    natsvisor::detail::on_closed(nullptr, closure); // while the owner lives: delivered
    CHECK(got_closed(self));
  } // the actor cleans up after its failed connect
  natsvisor::detail::on_closed(nullptr, closure); // nats.c's late callback
  natsvisor::detail::on_closed(nullptr, closure); // and once more: still nothing to free
  CHECK_FALSE(got_closed(self));
}

TEST_CASE("a callback whose actor is gone sends nothing and crashes nothing", "[callbacks]") {
  natsvisor::config cfg;
  caf::actor_system sys{cfg};
  void* closure = nullptr;
  {
    caf::scoped_actor gone{sys};
    natsvisor::detail::callback_owner owner{caf::actor_cast<caf::weak_actor_ptr>(gone)};
    closure = owner.closure();
    natsvisor::detail::on_connected(nullptr, closure);
  }
  natsvisor::detail::on_connected(nullptr, closure);
  SUCCEED("no crash");
}

// Defect: an exception inside a nats.c callback path (a bad_alloc while copying a message, say)
// unwound into C and terminated the process. Every callback runs inside at_c_boundary now.
TEST_CASE("an exception at the C boundary is caught and reported", "[regression][callbacks]") {
  bool ran_after = false;
  auto ok = natsvisor::detail::at_c_boundary("test callback",
                                             [] { throw std::runtime_error("boom"); });
  CHECK_FALSE(ok);
  auto ok2 = natsvisor::detail::at_c_boundary("test callback", [] { throw 42; });
  CHECK_FALSE(ok2);
  CHECK(natsvisor::detail::at_c_boundary("test callback", [&] { ran_after = true; }));
  CHECK(ran_after);
}
