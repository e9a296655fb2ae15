#pragma once

// Shared by the fuzz targets: a marker for secrets that the generated text can hold nowhere
// else, and a failure that libFuzzer reports with the input that caused it.

#include <cstdio>
#include <cstdlib>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

namespace natsvisor::fuzz {

/// Marks a secret. Random text never holds '\x7f' (random_text removes it), so any '\x7f' in
/// an output came from a secret: even one byte of it is a leak.
constexpr char marker_byte = '\x7f';
inline const std::string marker = std::string{marker_byte} + "S3CR3T" + marker_byte;

/// Up to `max` bytes of anything but the marker byte.
inline std::string random_text(FuzzedDataProvider& in, size_t max) {
  auto s = in.ConsumeRandomLengthString(max);
  std::string out;
  for (char c : s)
    if (c != marker_byte)
      out += c;
  return out;
}

/// A secret of arbitrary shape: random text around the marker (',', '@', "://" and all).
inline std::string random_secret(FuzzedDataProvider& in) {
  auto before = random_text(in, 12);
  auto after = random_text(in, 12);
  return before + marker + after;
}

#ifdef NATSVISOR_FUZZ_COUNT
// Measurement build (-DNATSVISOR_FUZZ_COUNT): failures are counted, not fatal, so one run
// says how many of its inputs fail (e.g. with the redaction before the fix linked in).
inline struct failure_count {
  unsigned long n = 0;
  ~failure_count() { std::fprintf(stderr, "fuzz: failing inputs: %lu\n", n); }
} failures;
inline void fail(const char*, const std::string&) {
  ++failures.n;
}
#else
[[noreturn]] inline void fail(const char* what, const std::string& output) {
  std::fprintf(stderr, "fuzz: %s\n  output: ", what);
  for (unsigned char c : output)
    std::fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}
#endif

inline bool leaks(const std::string& output) {
  return output.find(marker_byte) != std::string::npos;
}

} // namespace natsvisor::fuzz
