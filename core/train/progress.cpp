// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/util/error.h"

namespace mmlab {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class JsonlSink : public ProgressSink {
 public:
  void emit(ProgressEvent event) override {
    event.run_id = run_id_;
    const std::string line = to_line(event);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // the studio plots each line as it arrives
  }
};

class NullSink : public ProgressSink {
 public:
  void emit(ProgressEvent) override {}
};

// The value of metric `name` in a step or eval event, NaN when it has none.
double metric(const ProgressEvent& e, const std::string& name) {
  for (const auto& [key, value] : e.metrics) {
    if (key == name) return value;
  }
  return NAN;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  }
  return buf;
}

// A one-line bar on stderr, redrawn at most 5 times a second.
class BarSink : public ProgressSink {
 public:
  void emit(ProgressEvent e) override {
    if (e.kind == EventKind::kStep) {
      if (first_step_ < 0) {
        first_step_ = e.step;
        t0_ = Clock::now();
      }
      if (seconds_since(last_draw_) < 0.2 && e.step != e.total_steps) return;
      last_draw_ = Clock::now();
      const int64_t total = std::max<int64_t>(e.total_steps, 0);
      const double frac = total > 0 ? static_cast<double>(e.step) / static_cast<double>(total) : 0;
      const double rate =
          static_cast<double>(e.step - first_step_) / std::max(seconds_since(t0_), 1e-9);
      const double eta = rate > 0 ? static_cast<double>(total - e.step) / rate : NAN;
      const int width = 30, filled = static_cast<int>(frac * width);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(width, '.');
      std::fprintf(stderr,
                   "\r%-18.18s [%s] %6lld/%lld  loss %.4f  smooth %.4f  %7.0f tok/s  ETA %s ",
                   name_.c_str(), bar.c_str(), static_cast<long long>(e.step),
                   static_cast<long long>(total), metric(e, "loss"), metric(e, "loss_smooth"),
                   metric(e, "tokens_per_s"), format_duration(eta).c_str());
      std::fflush(stderr);
      open_line_ = true;
    } else if (e.kind == EventKind::kEval) {
      end_line();
      std::fprintf(stderr, "%s: step %lld  val_loss %.4f  val_ppl %.2f\n", name_.c_str(),
                   static_cast<long long>(std::max<int64_t>(e.step, 0)), metric(e, "val_loss"),
                   metric(e, "val_ppl"));
    } else if (e.kind == EventKind::kStatus) {
      end_line();
      if (!e.name.empty()) name_ = e.name;
      const std::string status(to_string(e.status));
      std::fprintf(stderr, "%s: %s%s%s\n", name_.c_str(), status.c_str(),
                   e.message.empty() ? "" : ": ", e.message.c_str());
    } else if (e.kind == EventKind::kLog && e.fraction >= 0) {
      // Progress of a long preparation step (tokenizing): redrawn in place.
      std::fprintf(stderr, "\r%s %3.0f%% ", e.message.c_str(), 100.0 * e.fraction);
      std::fflush(stderr);
      open_line_ = true;
    } else if (e.kind == EventKind::kLog) {
      end_line();
      std::fprintf(stderr, "%s\n", e.message.c_str());
    }
  }
  ~BarSink() override { end_line(); }

 private:
  void end_line() {
    if (open_line_) std::fputc('\n', stderr);
    open_line_ = false;
  }
  std::string name_ = "run";
  int64_t first_step_ = -1;
  Clock::time_point t0_{};
  Clock::time_point last_draw_{};
  bool open_line_ = false;
};

}  // namespace

std::unique_ptr<ProgressSink> make_progress_sink(const std::string& mode) {
  if (mode == "jsonl") return std::make_unique<JsonlSink>();
  if (mode == "bar") return std::make_unique<BarSink>();
  if (mode == "none") return std::make_unique<NullSink>();
  if (mode == "auto") {
    if (::isatty(STDERR_FILENO)) return std::make_unique<BarSink>();
    return std::make_unique<NullSink>();
  }
  throw UserError("Unknown progress mode '" + mode + "'.", "Use jsonl, bar, none or auto.",
                  kExitUsage);
}

}  // namespace mmlab
