#pragma once

// Helpers shared by the examples: a timestamped line printer, milliseconds of a timespan, and
// "make sure this JetStream stream exists", the URL from the command line. Also pulls in
// local_server.hpp (the nats-server an example can own). Header-only; everything lives in
// natsvisor_examples.

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include <nats/nats.h>

#include "caf/timespan.hpp"

#include "local_server.hpp"

namespace natsvisor_examples {

// -- output ----------------------------------------------------------------------------------

/// When the program started (static initialization): the origin of line_printer's timestamps.
inline const std::chrono::steady_clock::time_point start_time = std::chrono::steady_clock::now();

/// Serializes line_printer output across threads (actors print too).
inline std::mutex say_mutex;

/// Prints "[ 1.234s] who text" lines, one at a time from any thread, with the time since start;
/// the `who` column is `width` characters wide. Use as `const line_printer say{8};`.
struct line_printer {
  int width;

  void operator()(const char* who, const char* fmt, ...) const
    __attribute__((format(printf, 3, 4))) {
    char text[1024];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    double secs
      = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
    std::lock_guard<std::mutex> guard{say_mutex};
    std::printf("[%6.3fs] %-*s %s\n", secs, width, who, text);
    std::fflush(stdout);
  }
};

/// `t` in whole milliseconds (truncated), for printing with %lld.
inline long long ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

// -- JetStream -------------------------------------------------------------------------------

/// What js_AddStream answered in ensure_stream.
struct stream_result {
  natsStatus status = NATS_OK;
  jsErrCode jerr = static_cast<jsErrCode>(0);

  /// The stream was created, or exists with this config (the server answers OK for both).
  bool ready() const { return status == NATS_OK; }
  /// A stream of that name exists with a different config.
  bool exists() const { return status != NATS_OK && jerr == JSStreamNameExistErr; }
  /// Usable either way: ready() or exists().
  bool ok() const { return ready() || exists(); }
};

/// Adds the file-storage stream `name` capturing the one subject pattern `subjects`. Blocks for
/// one round trip (up to the JetStream timeout): call it off CAF's scheduler threads.
inline stream_result ensure_stream(jsCtx* js, const char* name, const char* subjects) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  const char* subject_list[] = {subjects};
  cfg.Subjects = subject_list;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  stream_result r;
  r.status = js_AddStream(&si, js, &cfg, nullptr, &r.jerr);
  jsStreamInfo_Destroy(si);
  return r;
}

/// The URL an example talks to: its first argument, else $NATS_URL, else the local default.
inline std::string url_from(int argc, char** argv) {
  if (argc > 1)
    return argv[1];
  if (const char* env = std::getenv("NATS_URL"); env != nullptr && *env != '\0')
    return env;
  return "nats://127.0.0.1:4222";
}

} // namespace natsvisor_examples
