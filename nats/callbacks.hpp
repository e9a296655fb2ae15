#pragma once

#include <atomic>
#include <memory>

#include <nats/nats.h>

#include "caf/actor_control_block.hpp"

namespace natsvisor::detail {

/// The closure of every nats.c connection callback of one connection actor. nats.c calls the
/// callbacks on its own thread, possibly after natsConnection_Destroy() returned, and
/// natsConnection_Connect can fail after it already queued the closed callback, so no closure
/// may be memory that one side frees while the other may still use it. The closure is therefore
/// a number, not a pointer: a callback looks the number up in a process-wide table (under a
/// mutex, on nats.c's thread) and sends its message to the weak handle it finds; the actor removes
/// its entry when it is destroyed, after which a late callback finds nothing and does nothing.
/// Nothing is ever freed by a callback. The table holds one entry per live connection actor.
class callback_owner {
 public:
  explicit callback_owner(caf::weak_actor_ptr owner);
  ~callback_owner();
  callback_owner(const callback_owner&) = delete;
  callback_owner& operator=(const callback_owner&) = delete;

  /// The closure to hand to nats.c.
  void* closure() const noexcept;

  /// True from the disconnected callback until the (re)connected one: nats.c reconnects and may
  /// hold the connection's lock for a whole attempt. Set by the callback before it sends its
  /// message, so the owner knows it before that message arrives. Needs no nats.c call to read.
  bool reconnecting() const noexcept { return link_->reconnecting.load(std::memory_order_acquire); }

  /// How many disconnects nats.c reported so far (counted before the flag is set): a disconnect
  /// healed before the owner looked still shows here.
  uint64_t disconnects() const noexcept { return link_->disconnects.load(std::memory_order_acquire); }

  /// What the callbacks write and the owner reads, without any nats.c call.
  struct link_state {
    std::atomic<bool> reconnecting{false};
    std::atomic<uint64_t> disconnects{0};
  };

 private:
  uintptr_t id_;
  std::shared_ptr<link_state> link_; // shared with the table entry
};

/// Installs the connected (retry-on-failed-connect), disconnected, reconnected, closed, error and
/// lame-duck callbacks with `owner`'s closure.
natsStatus install_callbacks(natsOptions* opts, const callback_owner& owner);

/// The connection callbacks, for tests that call them as nats.c would (late, or after a failed
/// connect). Each catches every exception: nothing may unwind into C.
void on_connected(natsConnection*, void* closure);
void on_closed(natsConnection*, void* closure);

/// Runs `f` at a C boundary (a nats.c callback): an exception is logged and swallowed, since
/// unwinding into nats.c would terminate the process. Returns false when `f` threw.
template <class F>
bool at_c_boundary(const char* where, F&& f) noexcept;

void log_boundary_exception(const char* where, const char* what) noexcept;

template <class F>
bool at_c_boundary(const char* where, F&& f) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    log_boundary_exception(where, e.what());
  } catch (...) {
    log_boundary_exception(where, "unknown exception");
  }
  return false;
}

} // namespace natsvisor::detail
