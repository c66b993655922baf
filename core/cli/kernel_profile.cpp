// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/cli/kernel_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <vector>

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

namespace {

// An event with a time span: where it ran (pid/tid), when, and for how long.
struct Span {
  std::string thread;
  double ts = 0, end = 0;
};

bool has_span(const nlohmann::json& e) {
  return e.contains("ts") && e["ts"].is_number() && e.contains("dur") && e["dur"].is_number();
}

Span span_of(const nlohmann::json& e) {
  const std::string pid = e.contains("pid") ? e["pid"].dump() : "";
  const std::string tid = e.contains("tid") ? e["tid"].dump() : "";
  const double ts = e["ts"].get<double>();
  return {pid + "/" + tid, ts, ts + e["dur"].get<double>()};
}

std::optional<int64_t> correlation_of(const nlohmann::json& e) {
  const auto args = e.find("args");
  if (args == e.end() || !args->is_object()) return std::nullopt;
  const auto c = args->find("correlation");
  if (c == args->end() || !c->is_number_integer()) return std::nullopt;
  return c->get<int64_t>();
}

struct HostOp {
  Span span;
  std::string name, input_dims;
};

constexpr size_t kLauncherDepth = 4;  // innermost operators named per launcher

// "outer > ... > innermost [dims]" from the operators open around a launch, outermost first.
std::string launcher_name(const std::vector<const HostOp*>& open) {
  if (open.empty()) return "(no operator around the launch)";
  std::string name;
  for (size_t i = open.size() > kLauncherDepth ? open.size() - kLauncherDepth : 0; i < open.size();
       ++i) {
    name += (name.empty() ? "" : " > ") + open[i]->name;
  }
  if (!open.back()->input_dims.empty()) name += " " + open.back()->input_dims;
  return name;
}

// The launcher of every launch on one host thread, by correlation id. The thread's operators
// nest, so one sweep in time order keeps the stack of those open at each launch.
void name_launches(std::vector<HostOp>& ops, std::vector<std::pair<Span, int64_t>>& launches,
                   std::map<int64_t, std::string>& out) {
  // Outermost first among operators that start together: the longer one.
  std::sort(ops.begin(), ops.end(), [](const HostOp& a, const HostOp& b) {
    return a.span.ts != b.span.ts ? a.span.ts < b.span.ts : a.span.end > b.span.end;
  });
  std::sort(launches.begin(), launches.end(),
            [](const auto& a, const auto& b) { return a.first.ts < b.first.ts; });
  std::vector<const HostOp*> open;
  size_t next = 0;
  for (const auto& [at, correlation] : launches) {
    for (; next < ops.size() && ops[next].span.ts <= at.ts; ++next) {
      while (!open.empty() && open.back()->span.end <= ops[next].span.ts) open.pop_back();
      open.push_back(&ops[next]);
    }
    while (!open.empty() && open.back()->span.end < at.end) open.pop_back();
    out[correlation] = launcher_name(open);
  }
}

std::vector<ProfileEntry> most_time_first(std::map<std::string, ProfileEntry>& by_name) {
  std::vector<ProfileEntry> out;
  for (auto& [name, entry] : by_name) out.push_back(std::move(entry));
  std::sort(out.begin(), out.end(), [](const ProfileEntry& a, const ProfileEntry& b) {
    return a.total_us != b.total_us ? a.total_us > b.total_us : a.name < b.name;
  });
  return out;
}

}  // namespace

ProfileSummary summarise_trace(const nlohmann::json& trace, const std::string& what) {
  ProfileSummary s;
  s.what = what;
  const auto events = trace.find("traceEvents");
  if (events == trace.end() || !events->is_array()) return s;
  std::map<std::string, ProfileEntry> by_name, by_launcher;
  const std::string want = lower(what);
  const bool kernels = want == "kernel";
  std::map<std::string, std::vector<HostOp>> host_ops;                    // by thread
  std::map<std::string, std::vector<std::pair<Span, int64_t>>> launches;  // by thread
  std::vector<std::pair<int64_t, double>> kernel_times;  // (correlation id, duration)
  for (const auto& e : *events) {
    if (!e.is_object() || !e.contains("cat") || !e["cat"].is_string()) continue;
    const std::string cat = lower(e["cat"].get<std::string>());
    if (kernels && (cat == "cpu_op" || cat == "cuda_runtime" || cat == "cuda_driver") &&
        has_span(e)) {
      if (cat == "cpu_op" && e.contains("name") && e["name"].is_string()) {
        HostOp op{span_of(e), e["name"].get<std::string>(), ""};
        if (e.contains("args") && e["args"].contains("Input Dims")) {
          op.input_dims = e["args"]["Input Dims"].dump();
        }
        host_ops[op.span.thread].push_back(std::move(op));
      } else if (cat != "cpu_op") {
        if (const auto c = correlation_of(e)) {
          const Span at = span_of(e);
          launches[at.thread].emplace_back(at, *c);
        }
      }
    }
    if (cat != want) continue;
    if (!e.contains("dur") || !e["dur"].is_number() || !e.contains("name")) continue;
    const std::string name = e["name"].get<std::string>();
    ProfileEntry& entry = by_name[name];
    entry.name = name;
    entry.total_us += e["dur"].get<double>();
    entry.calls += 1;
    s.total_us += e["dur"].get<double>();
    if (kernels) kernel_times.emplace_back(correlation_of(e).value_or(-1), e["dur"].get<double>());
  }
  s.entries = most_time_first(by_name);
  if (host_ops.empty()) return s;
  std::map<int64_t, std::string> launcher_of;  // by correlation id
  for (auto& [thread, thread_launches] : launches) {
    name_launches(host_ops[thread], thread_launches, launcher_of);
  }
  for (const auto& [correlation, dur] : kernel_times) {
    const auto launcher = launcher_of.find(correlation);
    const std::string name =
        launcher == launcher_of.end() ? "(no launch recorded)" : launcher->second;
    ProfileEntry& entry = by_launcher[name];
    entry.name = name;
    entry.total_us += dur;
    entry.calls += 1;
  }
  s.launchers = most_time_first(by_launcher);
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

namespace {

// Up to `top` rows of `entries`: share of `total_us`, ms and calls per step, the name cut to
// `width` characters.
std::string profile_rows(const std::vector<ProfileEntry>& entries, double total_us, double per_step,
                         size_t top, size_t width) {
  std::string out;
  char line[512];
  for (size_t i = 0; i < entries.size() && i < top; ++i) {
    const ProfileEntry& e = entries[i];
    std::string name = e.name.size() > width ? e.name.substr(0, width - 3) + "..." : e.name;
    std::snprintf(line, sizeof line, "  %5.1f%%  %8.3f ms  %6.1f x  %s\n",
                  total_us > 0 ? 100.0 * e.total_us / total_us : 0.0,
                  e.total_us * per_step / 1000.0, static_cast<double>(e.calls) * per_step,
                  name.c_str());
    out += line;
  }
  return out;
}

}  // namespace

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
  out += profile_rows(s.entries, s.total_us, per_step, top, 110);
  if (s.launchers.empty()) return out;
  std::snprintf(line, sizeof line,
                "  launched by (the innermost operators around each launch), top %zu:\n",
                std::min(top, s.launchers.size()));
  out += line;
  out += profile_rows(s.launchers, s.total_us, per_step, top, 220);
  return out;
}

}  // namespace mmlab::cli
