#pragma once

#include <string>

#include <nats/nats.h>

#include "caf/error.hpp"

#include "messages/errors.hpp"

namespace natsvisor {

/// Builds the error for a failed nats.c call: the code is derived from the status (timeouts,
/// closed connections, bad subjects, ... map to their own codes; `fallback` otherwise) and
/// the detail is nats.c's status text plus its last error text when it says more.
caf::error from_status(natsStatus s, errc fallback, const std::string& url,
                       const std::string& what = {});

} // namespace natsvisor
