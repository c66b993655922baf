// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/progress.h"

#include <unistd.h>

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
  void emit(const std::string& event, nlohmann::json fields) override {
    const double wall = fields.contains("wall") ? fields["wall"].get<double>() : 0.0;
    std::string line = progress_line(event, run_id_, wall, fields);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // the studio plots each line as it arrives
  }
};

class NullSink : public ProgressSink {
 public:
  void emit(const std::string&, nlohmann::json) override {}
};

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
  void emit(const std::string& event, nlohmann::json f) override {
    if (event == "step") {
      const int64_t step = f.value("step", int64_t{0}), total = f.value("total_steps", int64_t{0});
      if (first_step_ < 0) {
        first_step_ = step;
        t0_ = Clock::now();
      }
      if (seconds_since(last_draw_) < 0.2 && step != total) return;
      last_draw_ = Clock::now();
      const double frac = total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 0;
      const double rate =
          static_cast<double>(step - first_step_) / std::max(seconds_since(t0_), 1e-9);
      const double eta = rate > 0 ? static_cast<double>(total - step) / rate : NAN;
      const int width = 30, filled = static_cast<int>(frac * width);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(width, '.');
      const auto& m = f["metrics"];
      std::fprintf(stderr,
                   "\r%-18.18s [%s] %6lld/%lld  loss %.4f  smooth %.4f  %7.0f tok/s  ETA %s ",
                   name_.c_str(), bar.c_str(), static_cast<long long>(step),
                   static_cast<long long>(total), m.value("loss", NAN), m.value("loss_smooth", NAN),
                   m.value("tokens_per_s", NAN), format_duration(eta).c_str());
      std::fflush(stderr);
      open_line_ = true;
    } else if (event == "eval") {
      end_line();
      std::fprintf(stderr, "%s: step %lld  val_loss %.4f  val_ppl %.2f\n", name_.c_str(),
                   static_cast<long long>(f.value("step", int64_t{0})),
                   f["metrics"].value("val_loss", NAN), f["metrics"].value("val_ppl", NAN));
    } else if (event == "status") {
      end_line();
      if (f.contains("name")) name_ = f["name"].get<std::string>();
      std::fprintf(stderr, "%s: %s%s%s\n", name_.c_str(), f.value("status", "").c_str(),
                   f.contains("message") ? ": " : "", f.value("message", "").c_str());
    } else if (event == "log" && f.contains("fraction")) {
      // Progress of a long preparation step (tokenizing): redrawn in place.
      std::fprintf(stderr, "\r%s %3.0f%% ", f.value("message", "").c_str(),
                   100.0 * f["fraction"].get<double>());
      std::fflush(stderr);
      open_line_ = true;
    } else if (event == "log") {
      end_line();
      std::fprintf(stderr, "%s\n", f.value("message", "").c_str());
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

std::string progress_line(const std::string& event, int64_t run_id, double wall,
                          const nlohmann::json& fields) {
  nlohmann::json j = {{"event", event}, {"run_id", run_id}, {"wall", wall}};
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    if (it.key() != "wall") j[it.key()] = it.value();
  }
  // NaN/Inf are not JSON: a diverged loss is written as null.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
