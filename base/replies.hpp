#pragma once

// CAF 0.17 sends a handler's result back even for a fire-and-forget message, and an actor that
// receives an unexpected error message quits by default. So a failure of a fire-and-forget
// message is logged here and never sent back: a bad publish must not kill its publisher.

#include <string>

#include "caf/delegated.hpp"
#include "caf/error.hpp"
#include "caf/local_actor.hpp"
#include "caf/message.hpp"
#include "caf/response_promise.hpp"
#include "caf/scheduled_actor.hpp"

#include "base/logging.hpp"
#include "messages/errors.hpp"

namespace natsvisor::detail {

/// Answers a request with `err`; logs it for a fire-and-forget message.
inline void deliver_error(caf::response_promise& rp, caf::error err) {
  if (rp.async()) {
    log().warn("dropped a fire-and-forget message: {}", describe(err));
    return;
  }
  rp.deliver(std::move(err));
}

/// The handler form of deliver_error: `return fail<T>(self, err);`.
template <class T>
caf::result<T> fail(caf::local_actor* self, caf::error err) {
  if (self->current_message_id().is_async()) {
    log().warn("dropped a fire-and-forget message: {}", describe(err));
    return caf::delegated<T>{};
  }
  return err;
}

/// Keeps an actor alive whatever strays into its mailbox: unexpected messages are dropped
/// (a request among them is answered with an error), unexpected error messages are logged.
inline void tolerate_strays(caf::scheduled_actor* self, std::string who) {
  self->set_default_handler(
    [who](caf::scheduled_actor* ptr, caf::message_view& x) -> caf::result<caf::message> {
      // Never the content: a stray message may carry payloads, credentials or a URL.
      log().debug("{} dropped an unexpected message ({} elements)", who, x.content().size());
      if (ptr->current_message_id().is_request())
        return caf::sec::unexpected_message;
      return caf::message{};
    });
  self->set_error_handler([who](caf::scheduled_actor*, caf::error& err) {
    log().debug("{} ignored an error message: {}", who, describe(err)); // details are redacted
  });
}

} // namespace natsvisor::detail
