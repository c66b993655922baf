// SPDX-License-Identifier: GPL-3.0-or-later
// Where a trainer reports what it does: JSON lines for the studio (docs/progress-protocol.md), a
// progress bar with ETA on a terminal, or nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace mmlab {

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  /// One event of the protocol; `fields` holds the event's keys (event, run_id, wall are added).
  virtual void emit(const std::string& event, nlohmann::json fields) = 0;
  void set_run(int64_t run_id) { run_id_ = run_id; }

 protected:
  int64_t run_id_ = 0;
};

/// "jsonl" | "bar" | "none" | "auto" (bar when stderr is a terminal, else none).
std::unique_ptr<ProgressSink> make_progress_sink(const std::string& mode);

/// The protocol's line for one event (exposed for tests).
std::string progress_line(const std::string& event, int64_t run_id, double wall,
                          const nlohmann::json& fields);

}  // namespace mmlab
