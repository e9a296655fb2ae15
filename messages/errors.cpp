#include "messages/errors.hpp"

#include "caf/message.hpp"

namespace natsvisor {

const char* to_string(errc x) {
  switch (x) {
    case errc::none: return "none";
    case errc::invalid_url: return "invalid_url";
    case errc::connect_failed: return "connect_failed";
    case errc::timeout: return "timeout";
    case errc::connection_closed: return "connection_closed";
    case errc::gave_up: return "gave_up";
    case errc::pool_exhausted: return "pool_exhausted";
    case errc::jetstream_unavailable: return "jetstream_unavailable";
    case errc::invalid_subject: return "invalid_subject";
    case errc::payload_too_large: return "payload_too_large";
    case errc::unknown_service: return "unknown_service";
    case errc::invalid_config: return "invalid_config";
    case errc::service_stopped: return "service_stopped";
    case errc::nats_error: return "nats_error";
    case errc::no_responders: return "no_responders";
    case errc::no_stream: return "no_stream";
    case errc::jetstream_error: return "jetstream_error";
    case errc::overloaded: return "overloaded";
    case errc::auth_failed: return "auth_failed";
    case errc::tls_failed: return "tls_failed";
    case errc::unavailable: return "unavailable";
    case errc::dropped: return "dropped";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string detail, std::string url) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(detail), std::move(url))};
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != error_category)
    return errc::none;
  return static_cast<errc>(e.code());
}

namespace {
std::string context_string(const caf::error& e, size_t index) {
  if (code_of(e) == errc::none)
    return {};
  auto& ctx = e.context();
  if (ctx.size() > index && ctx.match_element<std::string>(index))
    return ctx.get_as<std::string>(index);
  return {};
}
} // namespace

std::string detail_of(const caf::error& e) {
  return context_string(e, 0);
}

std::string url_of(const caf::error& e) {
  return context_string(e, 1);
}

std::string describe(const caf::error& e, bool with_url) {
  if (!e)
    return "no error";
  if (code_of(e) == errc::none)
    return caf::to_string(e);
  std::string out = "natsvisor.";
  out += to_string(code_of(e));
  if (auto d = detail_of(e); !d.empty()) {
    out += ": ";
    out += d;
  }
  if (auto u = url_of(e); with_url && !u.empty()) {
    out += " [";
    out += u;
    out += "]";
  }
  return out;
}

} // namespace natsvisor
