#pragma once

// natsvisor's log lines, captured for tests that check what is logged.

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>

#include "base/logging.hpp"

namespace natsvisor::testing {

/// Collects natsvisor's log lines; its own mutex makes reading safe while actors log.
class capture_sink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard<std::mutex> guard{mutex_};
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    text_.append(buf.data(), buf.size());
  }
  void flush_() override {
    // nop: kept in memory
  }

 private:
  std::string text_;
};

/// Adds a capture_sink to natsvisor's logger for its lifetime; create it before the service and
/// let it end after the service, so no actor logs while the sink list changes.
struct log_capture {
  std::shared_ptr<capture_sink> sink = std::make_shared<capture_sink>();
  log_capture() { log().sinks().push_back(sink); }
  ~log_capture() {
    auto& sinks = log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
    set_log_level("warn");
  }
};

/// How many captured lines contain `needle`.
inline size_t count_lines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

} // namespace natsvisor::testing
