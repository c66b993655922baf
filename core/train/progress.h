// SPDX-License-Identifier: GPL-3.0-or-later
// Where a trainer reports what it does: JSON lines for the studio (docs/progress-protocol.md), a
// progress bar with ETA on a terminal, or nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/results/progress_event.h"

namespace mmlab {

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  /// One event of the protocol; its run_id is set to the run's.
  virtual void emit(ProgressEvent event) = 0;
  void set_run(int64_t run_id) { run_id_ = run_id; }
  /// This is run `index` (1-based) of `count` that one command trains one after another (the
  /// terminal bar says "run 2 of 4" and estimates the rest of the experiment).
  void set_experiment_position(int index, int count) {
    run_index_ = index;
    run_count_ = count;
  }

 protected:
  int64_t run_id_ = 0;
  int run_index_ = 0, run_count_ = 0;
};

/// What one redraw of the terminal progress bar shows.
struct ProgressBarState {
  std::string name;
  int run_index = 0, run_count = 0;  ///< "run 2 of 4" when count > 1
  int64_t step = 0, total_steps = 0;
  double loss_smooth = 0;       ///< NaN: not shown
  double tokens_per_s = 0;      ///< NaN: not shown
  double eta_run_s = 0;         ///< NaN: unknown
  double eta_experiment_s = 0;  ///< this run and the ones after it (count > 1)
};

/// The bar's line for a terminal `columns` wide: exactly columns - 1 characters (the last column
/// would wrap on some terminals, and every redraw would leave a line behind), padded so a longer
/// previous line is overwritten. Narrow terminals drop throughput, then the loss, then the
/// experiment ETA, then shorten the name and the bar.
std::string format_progress_bar(const ProgressBarState& state, int columns);

/// Columns of the terminal on stderr ($COLUMNS, else 80, when it cannot be asked).
int terminal_columns();

/// "jsonl" | "bar" | "none" | "auto" (bar when stderr is a terminal, else none).
std::unique_ptr<ProgressSink> make_progress_sink(const std::string& mode);

}  // namespace mmlab
