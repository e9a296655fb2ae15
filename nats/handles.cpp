#include "nats/handles.hpp"

#include "nats/message_io.hpp"
#include "nats/status.hpp"

namespace natsvisor {
namespace detail {

connection_core::~connection_core() {
  // Destroy closes first if needed. nats.c may still run the closed callback afterwards; its
  // closure is a number, not this object (see nats/callbacks.hpp).
  natsConnection_Destroy(nc);
}

jetstream_core::~jetstream_core() {
  jsCtx_Destroy(js);
}

} // namespace detail

caf::error publish(const connection_handle& h, const outgoing& m) {
  if (!h)
    return make_error(errc::connection_closed, "empty connection handle", h.url());
  if (auto err = check_limits(h.core()->limits(), m, 0, h.url()))
    return err;
  if (auto s = detail::publish(h.get(), m); s != NATS_OK)
    return from_status(s, errc::nats_error, h.url(), "publish to " + quote_subject(m.subject));
  return caf::none;
}

bool connection_handle::closed() const noexcept {
  return !core_ || core_->closed.load(std::memory_order_acquire);
}

} // namespace natsvisor
