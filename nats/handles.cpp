#include "nats/handles.hpp"

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

bool connection_handle::closed() const noexcept {
  return !core_ || core_->closed.load(std::memory_order_acquire);
}

} // namespace natsvisor
