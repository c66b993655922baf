// SPDX-License-Identifier: GPL-3.0-or-later
// The events of the trainer's `--progress=jsonl` stream (docs/progress-protocol.md) and their JSON:
// the one definition that the trainer writes with and the studio reads with, so a key renamed on
// one side is renamed on the other.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/results/run_status.h"

namespace mmlab {

enum class EventKind { kStatus, kStep, kEval, kCheckpoint, kLog };

/// "status", "step", "eval", "checkpoint", "log": the `event` key's words.
std::string_view to_string(EventKind kind);

/// One event of the stream. Fields an event does not carry keep their defaults (-1 / empty) and
/// are not written.
struct ProgressEvent {
  EventKind kind = EventKind::kLog;
  int64_t run_id = -1;
  double wall = 0;  ///< seconds since the run's first start
  int64_t step = -1;
  int64_t tokens = -1;
  int64_t total_steps = -1;
  RunStatus status = RunStatus::kQueued;  ///< kStatus only
  std::string message;                    ///< kStatus (failure sentence) and kLog
  std::string name;                       ///< kStatus: run name
  std::string db;                         ///< kStatus: database path
  std::string device;                     ///< kStatus: the device the run trains on
  std::string path;                       ///< kCheckpoint
  int64_t bytes = -1;                     ///< kCheckpoint
  std::string level;                      ///< kLog: info, warning, error
  double fraction = -1;                   ///< kLog: progress of a long preparation (0..1)
  /// kStep/kEval: metric name → value, in the line's order; NaN is written as JSON null.
  std::vector<std::pair<std::string, double>> metrics;

  bool operator==(const ProgressEvent& other) const;
};

/// The protocol's line for one event, without the newline.
std::string to_line(const ProgressEvent& event);

enum class EventParse {
  kEvent,         ///< a well-formed event of a kind this reader knows
  kMalformed,     ///< not an event of the protocol (the reason is given)
  kUnknownEvent,  ///< a well-formed object with an event name this reader does not know
};

/// Reads one JSON object of the stream into `out` (left alone unless kEvent). Unknown keys are
/// ignored; a known key of the wrong type, a missing `event`/`run_id`, a status event without a
/// known status or a step/eval event without a step is kMalformed with `why` set. A metric of a
/// non-numeric type is dropped alone.
EventParse parse_event(const nlohmann::json& object, ProgressEvent& out, std::string& why);

}  // namespace mmlab
