// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/fault_point.h"

#ifdef MMLAB_FAULT_POINTS

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

namespace mmlab {

void fault_point(const char* name) {
  const char* spec = std::getenv("MMLAB_TEST_KILL_AT");
  if (spec == nullptr) return;
  const std::string s = spec;
  const size_t colon = s.find(':');
  if (s.substr(0, colon) != name) return;
  static std::map<std::string, long> hits;
  const long wanted = colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
  if (++hits[name] >= wanted) ::kill(::getpid(), SIGKILL);
}

bool nan_fault_at(int64_t step) {
  const char* spec = std::getenv("MMLAB_TEST_NAN_AT");
  return spec != nullptr && std::atoll(spec) == step;
}

}  // namespace mmlab

#endif
