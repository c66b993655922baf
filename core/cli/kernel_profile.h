// SPDX-License-Identifier: GPL-3.0-or-later
// What a device spent its time on over a few training steps, from LibTorch's (Kineto) profiler:
// the Chrome trace for a viewer, and a table of the kernels (or, on a CPU, the operators) that took
// the most time, for `mmlab bench --profile`.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "core/util/error.h"

namespace mmlab::cli {

struct ProfileEntry {
  std::string name;
  double total_us = 0;
  int64_t calls = 0;
};

struct ProfileSummary {
  std::vector<ProfileEntry> entries;  // most time first
  double total_us = 0;                // of every entry, not only the ones kept
  std::string what;                   // "kernel" (GPU) or "cpu_op"
  /// For kernels: their time summed by what launched them, most time first. The name is the
  /// innermost operators around the launch on its host thread, outermost first, and the input
  /// shapes of the innermost ("ViewBackward0 > aten::reshape > aten::clone > aten::copy_
  /// [[1024,256,256],...]"): which layer's copy or cast a kernel is, which its name never says.
  std::vector<ProfileEntry> launchers;
};

/// Sums the trace's events of category `what` ("kernel" or "cpu_op", case-insensitive) by name,
/// and for kernels by launcher (the trace's correlation ids tie a kernel to its runtime launch,
/// and the launch's time on its thread to the operators around it). cpu_op durations include the
/// operators they call, so their total exceeds the wall time.
ProfileSummary summarise_trace(const nlohmann::json& trace, const std::string& what);

/// Records from construction to finish(); one at a time per process.
class KernelProfile {
 public:
  explicit KernelProfile(bool cuda);
  ~KernelProfile();
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;

  /// Stops recording, writes the Chrome trace to `trace_path` and returns its summary.
  ProfileSummary finish(const std::string& trace_path);

 private:
  bool cuda_;
  bool running_ = false;
};

/// The refusal when this LibTorch cannot record.
UserError no_profiler_error();

/// Whether this LibTorch can record and write a trace (Debian's 1.13 has no Kineto); probes with
/// a file in `scratch_dir`.
bool profiler_available(const std::filesystem::path& scratch_dir);

/// The summary as a table: share of the total, ms per step, calls per step, name; then the
/// `top` launchers the same way, when there are any.
std::string format_profile(const ProfileSummary& s, int steps, size_t top);

}  // namespace mmlab::cli
