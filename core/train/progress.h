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

 protected:
  int64_t run_id_ = 0;
};

/// "jsonl" | "bar" | "none" | "auto" (bar when stderr is a terminal, else none).
std::unique_ptr<ProgressSink> make_progress_sink(const std::string& mode);

}  // namespace mmlab
