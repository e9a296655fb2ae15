#pragma once

// What the kernel says about this process, for tests and the benchmark: resident memory and
// thread count.

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace natsvisor::testing {

/// A "Key: N kB" line of /proc/self/status (VmRSS, VmHWM, ...), in kB; -1 if absent.
inline long proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  auto klen = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ':')
      return std::atol(line.c_str() + klen + 1);
  return -1;
}

/// Threads of this process now (its /proc/self/task entries).
inline size_t thread_count() {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator{"/proc/self/task", ec};
       !ec && it != std::filesystem::directory_iterator{}; it.increment(ec))
    ++n;
  return n;
}

} // namespace natsvisor::testing
