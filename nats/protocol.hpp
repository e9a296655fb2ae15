#pragma once

#include <string>
#include <string_view>

#include <optional>

#include "caf/expected.hpp"

#include "base/time.hpp"
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

/// The JetStream API subject that lists the streams capturing a subject, and its request body.
inline constexpr const char* stream_names_subject = "$JS.API.STREAM.NAMES";
std::string stream_names_request(std::string_view subject);

/// Whether a $JS.API.STREAM.NAMES answer names at least one stream; nothing when the answer does
/// not say (an API error, or no answer that can be read).
std::optional<bool> names_a_stream(std::string_view json);

/// What becomes of a JetStream publish that the server answered with "no responders" (status
/// 503). That answer has three causes that look alike: no stream captures the subject
/// (permanent), the stream has no leader while its replicas elect one (4-7 s in a 3-node
/// cluster), or JetStream is not running there. Calling every one `no_stream` made a transient
/// election look permanent. So the connection actor asks JetStream whether a stream captures the
/// subject (`stream_exists`: nothing while that cannot be known, e.g. the meta leader is being
/// elected too), and then:
/// - no stream: errc::no_stream, at once, as before;
/// - a stream exists, or it cannot be known: the publish is sent again after `retry_delay` with
///   the same Nats-Msg-Id (JetStream stores it once however often it arrives), until its
///   deadline; a publish still unanswered then is errc::unavailable (transient: retrying later
///   may work), never no_stream. Retrying inside the deadline rather than failing at once spares
///   every application its own retry loop for an outage it cannot act upon.
enum class js_no_responders_verdict { no_stream, retry, unavailable };

js_no_responders_verdict on_js_no_responders(std::optional<bool> stream_exists, steady_time now,
                                             steady_time deadline, caf::timespan retry_delay);

} // namespace natsvisor
