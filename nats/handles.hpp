#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <nats/nats.h>

#include "caf/actor.hpp"
#include "caf/meta/type_name.hpp"

#include "messages/types.hpp"
#include "nats/protocol.hpp"

namespace natsvisor {

namespace detail {

/// Owns one natsConnection. The last owner destroys it, so a handle never dangles: once the
/// connection actor closed it, nats.c answers NATS_CONNECTION_CLOSED instead of crashing.
struct connection_core {
  connection_core(natsConnection* c, size_t max_control_line) noexcept
    : nc(c), max_control_line(max_control_line) {}
  ~connection_core();
  connection_core(const connection_core&) = delete;
  connection_core& operator=(const connection_core&) = delete;
  natsConnection* const nc;
  /// Set by the connection's owner once the connection is closed for good. Read without any
  /// nats.c call, because nats.c holds the connection's lock for a whole reconnect attempt and
  /// `natsConnection_IsClosed` would wait for it.
  std::atomic<bool> closed{false};
  /// What the server accepts (nats/protocol.hpp): max_control_line from the settings, and
  /// max_payload as the server announced it, stored by the owner once connected (0 until then).
  /// Kept here so no check needs a nats.c call, which would wait for the connection's lock.
  const size_t max_control_line;
  std::atomic<int64_t> max_payload{0};
  protocol_limits limits() const noexcept {
    return {max_control_line, max_payload.load(std::memory_order_relaxed)};
  }
};

/// Owns one jsCtx and keeps its connection alive: `conn` is declared first, so it is released
/// only after the destructor body destroyed the context.
struct jetstream_core {
  jetstream_core(std::shared_ptr<connection_core> c, jsCtx* j) noexcept
    : conn(std::move(c)), js(j) {}
  ~jetstream_core();
  jetstream_core(const jetstream_core&) = delete;
  jetstream_core& operator=(const jetstream_core&) = delete;
  const std::shared_ptr<connection_core> conn;
  jsCtx* const js;
};

/// Runs `on_release` (which only sends a message to the supervisor) once: at the first explicit
/// release of any copy, or when the last copy of the scope or lease is gone: on any thread,
/// however the scope ended (return, exception, a reply dropped because its requester died).
/// Sending to a stopped service does nothing.
struct release_guard {
  explicit release_guard(std::function<void()> f) : on_release(std::move(f)) {}
  ~release_guard() { fire(); }
  release_guard(const release_guard&) = delete;
  release_guard& operator=(const release_guard&) = delete;
  void fire() noexcept {
    if (!fired.exchange(true) && on_release)
      on_release();
  }
  std::function<void()> on_release;
  std::atomic<bool> fired{false};
};

} // namespace detail

/// A cheap, copyable value sharing ownership of one connection. After its connection was
/// replaced or closed, `closed()` is true and nats.c calls fail with NATS_CONNECTION_CLOSED:
/// ask the service again for a fresh one.
class connection_handle {
 public:
  connection_handle() = default;
  connection_handle(std::shared_ptr<detail::connection_core> core, std::string url,
                    uint64_t generation)
    : core_(std::move(core)), url_(std::move(url)), generation_(generation) {}

  /// The nats.c connection, for any nats.c call; nullptr for an empty handle.
  natsConnection* get() const noexcept { return core_ ? core_->nc : nullptr; }
  /// The shared connection state; nullptr for an empty handle.
  const detail::connection_core* core() const noexcept { return core_.get(); }
  explicit operator bool() const noexcept { return get() != nullptr; }
  /// True for an empty handle and once the connection was closed for good.
  bool closed() const noexcept;
  /// The URL with any user, password or token redacted.
  const std::string& url() const noexcept { return url_; }
  /// Which connection actor made it: 1 for the first, +1 for each restart of its URL.
  uint64_t generation() const noexcept { return generation_; }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, connection_handle& x) {
    // The core is shared between local actors only; it is not serialized.
    return f(caf::meta::type_name("connection_handle"), x.url_, x.generation_);
  }

 private:
  std::shared_ptr<detail::connection_core> core_;
  std::string url_;
  uint64_t generation_ = 0;
};

/// Publishes `m` on the handle's connection (headers included) after checking it against the
/// server's limits: a subject too long for the server's control line fails with
/// invalid_subject, a payload above max_payload with payload_too_large, and the connection
/// stays up (the server would close it). Otherwise nats.c's status, mapped (nats/status.hpp).
/// The raw `natsConnection_Publish(h.get(), ...)` skips this check.
caf::error publish(const connection_handle& h, const outgoing& m);

/// A copyable value sharing ownership of a JetStream context and of the connection under it.
class jetstream_handle {
 public:
  jetstream_handle() = default;
  jetstream_handle(std::shared_ptr<detail::jetstream_core> core, std::string url,
                   uint64_t generation)
    : core_(std::move(core)), url_(std::move(url)), generation_(generation) {}

  /// The nats.c JetStream context; nullptr for an empty handle.
  jsCtx* get() const noexcept { return core_ ? core_->js : nullptr; }
  explicit operator bool() const noexcept { return get() != nullptr; }
  /// The connection this context publishes on.
  connection_handle connection() const {
    return core_ ? connection_handle{core_->conn, url_, generation_} : connection_handle{};
  }
  bool closed() const noexcept { return connection().closed(); }
  const std::string& url() const noexcept { return url_; }
  uint64_t generation() const noexcept { return generation_; }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, jetstream_handle& x) {
    return f(caf::meta::type_name("jetstream_handle"), x.url_, x.generation_);
  }

 private:
  std::shared_ptr<detail::jetstream_core> core_;
  std::string url_;
  uint64_t generation_ = 0;
};

/// RAII use of a handle (the C++ form of the original `connection_scope` / `jetstream_scope`):
/// the service counts the scope as active until the last copy of it is destroyed, however the
/// scope ends. Copies share one registration.
template <class Handle>
class basic_scope {
 public:
  basic_scope() = default;
  basic_scope(Handle h, std::shared_ptr<detail::release_guard> g)
    : handle_(std::move(h)), guard_(std::move(g)) {}

  const Handle& handle() const noexcept { return handle_; }
  auto get() const noexcept { return handle_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(handle_); }
  /// Ends the scope now, for every copy (a copy may still sit in a message being handled).
  void release() noexcept {
    if (guard_)
      guard_->fire();
    guard_.reset();
    handle_ = Handle{};
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, basic_scope& x) {
    return f(caf::meta::type_name("scope"), x.handle_);
  }

 private:
  Handle handle_;
  std::shared_ptr<detail::release_guard> guard_;
};

using connection_scope = basic_scope<connection_handle>;
using jetstream_scope = basic_scope<jetstream_handle>;

/// An exclusive loan of one pooled connection: a scope whose release returns the connection
/// to the pool. `release()` on any copy, or destroying the last copy, returns it, from any
/// thread; returning twice, or after the service stopped, is harmless. Copies share one loan
/// (a copy may still sit in the message that delivered it): keep one owner, and use no copy's
/// connection after the release.
class lease : public basic_scope<connection_handle> {
 public:
  lease() = default;
  lease(connection_handle h, uint64_t id, std::shared_ptr<detail::release_guard> g)
    : basic_scope(std::move(h), std::move(g)), id_(id) {}

  /// Identifies the loan in logs and leak reports.
  uint64_t id() const noexcept { return id_; }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, lease& x) {
    return f(caf::meta::type_name("lease"), static_cast<basic_scope&>(x), x.id_);
  }

 private:
  uint64_t id_ = 0;
};

} // namespace natsvisor
