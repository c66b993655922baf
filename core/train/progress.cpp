// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/results/metric_names.h"
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
double metric_value(const ProgressEvent& e, const std::string& name) {
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

// A one-line bar on stderr, fitted to the terminal's width and redrawn in place at most 5 times
// a second.
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
      const int64_t step = e.step, total = std::max<int64_t>(e.total_steps, 0);
      const double elapsed = std::max(seconds_since(t0_), 1e-9);
      const double rate = static_cast<double>(step - first_step_) / elapsed;
      ProgressBarState b;
      b.name = name_;
      b.run_index = run_index_;
      b.run_count = run_count_;
      b.step = step;
      b.total_steps = total;
      b.loss_smooth = metric_value(e, metric::kLossSmooth);
      b.tokens_per_s = metric_value(e, metric::kTokensPerS);
      b.eta_run_s = rate > 0 ? static_cast<double>(total - step) / rate : NAN;
      // The runs still to come are assumed as long as this one (from its own start to its end).
      const double run_time = rate > 0 ? static_cast<double>(total - first_step_) / rate : NAN;
      b.eta_experiment_s = b.eta_run_s + std::max(0, run_count_ - run_index_) * run_time;
      const std::string line = format_progress_bar(b, terminal_columns());
      std::fprintf(stderr, "\r%s", line.c_str());
      std::fflush(stderr);
      open_line_ = true;
    } else if (e.kind == EventKind::kEval) {
      end_line();
      std::fprintf(stderr, "%s: step %lld  val_loss %.4f  val_ppl %.2f\n", name_.c_str(),
                   static_cast<long long>(std::max<int64_t>(e.step, 0)),
                   metric_value(e, metric::kValLoss), metric_value(e, metric::kValPpl));
    } else if (e.kind == EventKind::kStatus) {
      end_line();
      if (!e.name.empty()) name_ = e.name;
      const std::string status(to_string(e.status));
      const std::string position =
          run_count_ > 1 && e.status == RunStatus::kRunning
              ? " (run " + std::to_string(run_index_) + " of " + std::to_string(run_count_) + ")"
              : "";
      std::fprintf(stderr, "%s: %s%s%s%s\n", name_.c_str(), status.c_str(), position.c_str(),
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

int terminal_columns() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  return 80;
}

std::string format_progress_bar(const ProgressBarState& s, int columns) {
  const int width = std::max(columns - 1, 1);
  char buf[64];
  std::string run = s.run_count > 1 ? "run " + std::to_string(s.run_index) + " of " +
                                          std::to_string(s.run_count) + "  "
                                    : "";
  std::string name = s.name;
  std::snprintf(buf, sizeof buf, " %lld/%lld", static_cast<long long>(s.step),
                static_cast<long long>(s.total_steps));
  const std::string counts = buf;
  std::string loss, speed, all;
  if (std::isfinite(s.loss_smooth)) {
    std::snprintf(buf, sizeof buf, "  loss %.4f", s.loss_smooth);
    loss = buf;
  }
  if (std::isfinite(s.tokens_per_s)) {
    std::snprintf(buf, sizeof buf, "  %.0f tok/s", s.tokens_per_s);
    speed = buf;
  }
  const std::string eta = "  ETA " + format_duration(s.eta_run_s);
  if (s.run_count > 1) all = " (all " + format_duration(s.eta_experiment_s) + ")";
  auto text = [&] {
    return run.size() + name.size() + 3 + counts.size() + loss.size() + speed.size() + eta.size() +
           all.size();
  };
  constexpr int kMinBar = 10, kMaxBar = 40;
  for (std::string* optional : {&speed, &loss, &all}) {
    if (width - static_cast<int>(text()) >= kMinBar) break;
    optional->clear();
  }
  const int over = static_cast<int>(text()) + kMinBar - width;
  if (over > 0) name.resize(name.size() > static_cast<size_t>(over) ? name.size() - over : 0);
  const int bar_width = std::clamp(width - static_cast<int>(text()), 0, kMaxBar);
  const double frac =
      s.total_steps > 0
          ? std::clamp(static_cast<double>(s.step) / static_cast<double>(s.total_steps), 0.0, 1.0)
          : 0.0;
  std::string bar(static_cast<size_t>(std::lround(frac * bar_width)), '#');
  bar.resize(static_cast<size_t>(bar_width), '.');
  std::string line = run + name + " [" + bar + "]" + counts + loss + speed + eta + all;
  line.resize(static_cast<size_t>(width), ' ');
  return line;
}

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
