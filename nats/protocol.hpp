#pragma once

#include <string>
#include <string_view>

#include "caf/expected.hpp"

#include "messages/types.hpp"

namespace natsvisor {

/// Whether `subject` is a valid NATS subject: non-empty dot-separated tokens without white
/// space. With `wildcards`, a token may be `*`, and `>` may be the last token (subscriptions).
bool valid_subject(std::string_view subject, bool wildcards);

/// The error a JetStream API reply carries ({"error":{"code":C,"err_code":E,"description":...}}),
/// or none. Codes as for parse_js_ack.
caf::error jetstream_api_error(std::string_view json, const std::string& url);

/// Parses JetStream's reply to a publish: {"stream":"S","seq":N[,"duplicate":true]} or
/// {"error":{"code":C,"err_code":E,"description":"..."}}. Errors are errc::jetstream_error
/// (or errc::no_stream for err_code 10060, "no stream matches subject") carrying the
/// description; `url` must be redacted.
caf::expected<js_ack> parse_js_ack(std::string_view json, const std::string& url);

} // namespace natsvisor
