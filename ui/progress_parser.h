// SPDX-License-Identifier: GPL-3.0-or-later
// Reader of the trainer's `--progress=jsonl` stream (docs/progress-protocol.md; the events and
// their JSON are core/results/progress_event.h). Bytes arrive in arbitrary chunks from a pipe, so
// lines are reassembled here; a line that is not a well-formed event is counted and skipped, never
// fatal: the database stays the source of truth, and a child that prints a stray message must not
// take the studio down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/results/progress_event.h"

namespace mmlab::ui {

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
