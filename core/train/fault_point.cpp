// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/fault_point.h"

#ifdef MMLAB_FAULT_POINTS

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

namespace mmlab {

namespace {

// Whether the fault `spec` ("NAME[:N]") is due at this pass through `name`.
bool due(const char* spec, const char* name, std::map<std::string, long>& hits) {
  if (spec == nullptr) return false;
  const std::string s = spec;
  const size_t colon = s.find(':');
  if (s.substr(0, colon) != name) return false;
  const long wanted = colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
  return ++hits[name] >= wanted;
}

}  // namespace

void fault_point(const char* name) {
  // A data-parallel test aims at one rank: the process whose RANK is MMLAB_TEST_FAULT_RANK.
  const char* only = std::getenv("MMLAB_TEST_FAULT_RANK");
  const char* rank = std::getenv("RANK");
  if (only != nullptr && (rank == nullptr || std::string(only) != rank)) return;
  static std::map<std::string, long> kill_hits, stop_hits;
  if (due(std::getenv("MMLAB_TEST_KILL_AT"), name, kill_hits)) ::kill(::getpid(), SIGKILL);
  if (due(std::getenv("MMLAB_TEST_STOP_AT"), name, stop_hits)) ::kill(::getpid(), SIGSTOP);
}

bool nan_fault_at(int64_t step) {
  const char* spec = std::getenv("MMLAB_TEST_NAN_AT");
  return spec != nullptr && std::atoll(spec) == step;
}

}  // namespace mmlab

#else

namespace mmlab {

void fault_point(const char*) {}
bool nan_fault_at(int64_t) {
  return false;
}

}  // namespace mmlab

#endif
