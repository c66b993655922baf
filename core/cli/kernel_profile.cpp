// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/kernel_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "core/util/error.h"

namespace mmlab::cli {

namespace prof = torch::profiler::impl;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::set<prof::ActivityType> activities(bool cuda) {
  std::set<prof::ActivityType> a{prof::ActivityType::CPU};
  if (cuda) a.insert(prof::ActivityType::CUDA);
  return a;
}

}  // namespace

UserError no_profiler_error() {
  return UserError(
      "This build's LibTorch has no trace profiler (Kineto), so --profile cannot record anything.",
      "Build mmlab against a LibTorch 2.x with Kineto, e.g. the one inside PyTorch's wheel.");
}

ProfileSummary summarise_trace(const nlohmann::json& trace, const std::string& what) {
  ProfileSummary s;
  s.what = what;
  const auto events = trace.find("traceEvents");
  if (events == trace.end() || !events->is_array()) return s;
  std::map<std::string, ProfileEntry> by_name;
  const std::string want = lower(what);
  for (const auto& e : *events) {
    if (!e.is_object() || !e.contains("cat") || !e["cat"].is_string()) continue;
    if (lower(e["cat"].get<std::string>()) != want) continue;
    if (!e.contains("dur") || !e["dur"].is_number() || !e.contains("name")) continue;
    const std::string name = e["name"].get<std::string>();
    ProfileEntry& entry = by_name[name];
    entry.name = name;
    entry.total_us += e["dur"].get<double>();
    entry.calls += 1;
    s.total_us += e["dur"].get<double>();
  }
  for (auto& [name, entry] : by_name) s.entries.push_back(std::move(entry));
  std::sort(s.entries.begin(), s.entries.end(), [](const ProfileEntry& a, const ProfileEntry& b) {
    return a.total_us != b.total_us ? a.total_us > b.total_us : a.name < b.name;
  });
  return s;
}

KernelProfile::KernelProfile(bool cuda) : cuda_(cuda) {
  // Input shapes in the trace: which copy or cast a kernel belongs to is otherwise guesswork.
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true);
  torch::autograd::profiler::prepareProfiler(config, activities(cuda_));
  torch::autograd::profiler::enableProfiler(config, activities(cuda_));
  running_ = true;
}

KernelProfile::~KernelProfile() {
  if (running_) {
    try {
      torch::autograd::profiler::disableProfiler();
    } catch (...) {  // a destructor must not throw; the profile is abandoned anyway
    }
  }
}

ProfileSummary KernelProfile::finish(const std::string& trace_path) {
  running_ = false;
  auto result = torch::autograd::profiler::disableProfiler();
  try {
    result->save(trace_path);
  } catch (const c10::Error&) {
    // LibTorch built without Kineto (Debian's 1.13) records nothing it can write.
    throw no_profiler_error();
  }
  std::ifstream in(trace_path);
  nlohmann::json trace = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (trace.is_discarded()) {
    throw ResourceError("The profile trace " + trace_path + " could not be written or read back.",
                        "Check that its folder is writable and has free space.");
  }
  return summarise_trace(trace, cuda_ ? "kernel" : "cpu_op");
}

bool profiler_available(const std::filesystem::path& scratch_dir) {
  const auto probe = scratch_dir / ".profiler-probe.trace.json";
  bool available = true;
  try {
    KernelProfile profile(false);
    profile.finish(probe.string());
  } catch (const UserError&) {
    available = false;
  }
  std::error_code ec;
  std::filesystem::remove(probe, ec);
  return available;
}

std::string format_profile(const ProfileSummary& s, int steps, size_t top) {
  std::string out;
  char line[512];
  const double per_step = steps > 0 ? 1.0 / steps : 1.0;
  std::snprintf(
      line, sizeof line, "  %s time per step %.2f ms in %.0f calls; top %zu:\n", s.what.c_str(),
      s.total_us * per_step / 1000.0,
      [&] {
        double n = 0;
        for (const auto& e : s.entries) n += static_cast<double>(e.calls);
        return n * per_step;
      }(),
      std::min(top, s.entries.size()));
  out += line;
  for (size_t i = 0; i < s.entries.size() && i < top; ++i) {
    const ProfileEntry& e = s.entries[i];
    std::string name = e.name.size() > 110 ? e.name.substr(0, 107) + "..." : e.name;
    std::snprintf(line, sizeof line, "  %5.1f%%  %8.3f ms  %6.1f x  %s\n",
                  s.total_us > 0 ? 100.0 * e.total_us / s.total_us : 0.0,
                  e.total_us * per_step / 1000.0, static_cast<double>(e.calls) * per_step,
                  name.c_str());
    out += line;
  }
  return out;
}

}  // namespace mmlab::cli
