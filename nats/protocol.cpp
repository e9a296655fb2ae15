#include "nats/protocol.hpp"

#include <cctype>
#include <cstdlib>
#include <optional>

#include "messages/errors.hpp"

namespace natsvisor {

bool valid_subject(std::string_view subject, bool wildcards) {
  if (subject.empty())
    return false;
  size_t start = 0;
  for (;;) {
    auto dot = subject.find('.', start);
    auto token
      = subject.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (token.empty())
      return false;
    for (unsigned char c : token)
      if (std::isspace(c) || std::iscntrl(c))
        return false;
    bool last = dot == std::string_view::npos;
    if (token.find_first_of("*>") != std::string_view::npos) {
      if (!wildcards || token.size() != 1 || (token == ">" && !last))
        return false;
    }
    if (last)
      return true;
    start = dot + 1;
  }
}

namespace {

// The raw text after `"key":` (white space skipped), or npos. JetStream's replies are flat
// enough that a full JSON parser would buy nothing here.
size_t value_pos(std::string_view json, std::string_view key) {
  std::string quoted = "\"" + std::string{key} + "\"";
  auto pos = json.find(quoted);
  if (pos == std::string_view::npos)
    return pos;
  pos = json.find(':', pos + quoted.size());
  if (pos == std::string_view::npos)
    return pos;
  ++pos;
  while (pos < json.size() && std::isspace(static_cast<unsigned char>(json[pos])))
    ++pos;
  return pos < json.size() ? pos : std::string_view::npos;
}

std::optional<std::string> string_value(std::string_view json, std::string_view key) {
  auto pos = value_pos(json, key);
  if (pos == std::string_view::npos || json[pos] != '"')
    return std::nullopt;
  std::string out;
  for (++pos; pos < json.size(); ++pos) {
    char c = json[pos];
    if (c == '"')
      return out;
    if (c == '\\' && pos + 1 < json.size())
      c = json[++pos];
    out += c;
  }
  return std::nullopt;
}

std::optional<uint64_t> number_value(std::string_view json, std::string_view key) {
  auto pos = value_pos(json, key);
  if (pos == std::string_view::npos || !std::isdigit(static_cast<unsigned char>(json[pos])))
    return std::nullopt;
  return std::strtoull(std::string{json.substr(pos, 24)}.c_str(), nullptr, 10);
}

} // namespace

caf::error jetstream_api_error(std::string_view json, const std::string& url) {
  auto err_pos = json.find("\"error\"");
  if (err_pos == std::string_view::npos)
    return caf::none;
  auto err = json.substr(err_pos);
  auto description = string_value(err, "description").value_or("unknown JetStream error");
  auto err_code = number_value(err, "err_code").value_or(0);
  auto code = err_code == 10060 ? errc::no_stream : errc::jetstream_error;
  return make_error(code, description + " (err_code " + std::to_string(err_code) + ")", url);
}

caf::expected<js_ack> parse_js_ack(std::string_view json, const std::string& url) {
  if (auto err = jetstream_api_error(json, url))
    return err;
  auto stream = string_value(json, "stream");
  auto seq = number_value(json, "seq");
  if (!stream || !seq)
    return make_error(errc::jetstream_error,
                      "unexpected JetStream reply: " + std::string{json.substr(0, 200)}, url);
  js_ack ack;
  ack.stream = *stream;
  ack.sequence = *seq;
  auto dup = value_pos(json, "duplicate");
  ack.duplicate = dup != std::string_view::npos && json.substr(dup, 4) == "true";
  return ack;
}

std::string stream_names_request(std::string_view subject) {
  std::string out = R"({"subject":")";
  for (char c : subject) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"}";
}

std::optional<bool> names_a_stream(std::string_view json) {
  if (jetstream_api_error(json, {}))
    return std::nullopt;
  if (auto total = number_value(json, "total"))
    return *total > 0;
  return std::nullopt;
}

js_no_responders_verdict on_js_no_responders(std::optional<bool> stream_exists, steady_time now,
                                             steady_time deadline, caf::timespan retry_delay) {
  if (stream_exists == false)
    return js_no_responders_verdict::no_stream;
  if (now + retry_delay < deadline)
    return js_no_responders_verdict::retry;
  return js_no_responders_verdict::unavailable;
}

} // namespace natsvisor
