// SPDX-License-Identifier: GPL-3.0-or-later
// Reader of the trainer's `--progress=jsonl` stream (docs/progress-protocol.md). Bytes arrive in
// arbitrary chunks from a pipe, so lines are reassembled here; a line that is not a well-formed
// event is counted and skipped, never fatal: the database stays the source of truth, and a child
// that prints a stray message must not take the studio down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mmlab::ui {

enum class EventKind { kStatus, kStep, kEval, kCheckpoint, kLog };

/// One event of the stream. Fields an event does not carry keep their defaults (-1 / empty).
struct ProgressEvent {
  EventKind kind = EventKind::kLog;
  int64_t run_id = -1;
  double wall = 0;
  int64_t step = -1;
  int64_t tokens = -1;
  int64_t total_steps = -1;
  std::string status;    ///< kStatus: queued, running, stopped, finished, failed, diverged
  std::string message;   ///< kStatus (failure sentence) and kLog
  std::string name;      ///< kStatus: run name
  std::string db;        ///< kStatus: database path
  std::string path;      ///< kCheckpoint
  int64_t bytes = -1;    ///< kCheckpoint
  std::string level;     ///< kLog: info, warning, error
  double fraction = -1;  ///< kLog: progress of a long preparation (0..1), when given
  /// kStep/kEval: metric name → value; a JSON null (how NaN is printed) reads as NaN.
  std::vector<std::pair<std::string, double>> metrics;
};

class ProgressParser {
 public:
  /// Lines longer than this are dropped as malformed: a child writing binary garbage without
  /// newlines must not grow the buffer without bound.
  static constexpr size_t kMaxLine = 1 << 20;

  /// Appends a chunk and returns the events of every line it completed.
  std::vector<ProgressEvent> feed(std::string_view chunk);
  /// Parses a trailing line without newline (call when the child has exited).
  std::vector<ProgressEvent> finish();

  /// Parses one complete line. Returns false (and counts it) when it is not a valid event;
  /// blank lines are neither events nor malformed.
  bool parse_line(std::string_view line, ProgressEvent& out);

  int64_t events() const { return events_; }
  /// Lines that were not JSON, not an object, lacked `event`/`run_id`, had a wrongly typed
  /// known key, or were too long.
  int64_t malformed() const { return malformed_; }
  /// Well-formed objects with an event name this reader does not know (a newer trainer).
  int64_t ignored() const { return ignored_; }
  /// The reason the last malformed line was rejected, for a tooltip or log.
  const std::string& last_error() const { return last_error_; }

 private:
  bool reject(std::string why);

  std::string pending_;
  bool overflow_ = false;  // discarding the rest of an over-long line
  int64_t events_ = 0;
  int64_t malformed_ = 0;
  int64_t ignored_ = 0;
  std::string last_error_;
};

}  // namespace mmlab::ui
