// SPDX-License-Identifier: GPL-3.0-or-later
// The bookkeeping of a run's life in the store and on the progress stream: its heartbeat while it
// trains, and each way it can end (finished, stopped, diverged, failed, out of memory) written
// the same way: pending points flushed, the row's status and error, the `status` event, and the
// TrainResult with its exit code. The trainer decides that a run ends; this says so.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/train/memory_advice.h"
#include "core/train/progress.h"
#include "core/train/trainer.h"

namespace mmlab {

namespace store {
class RunWriter;
class MetricBuffer;
}  // namespace store

/// Where a run stands at an end or a heartbeat.
struct RunPosition {
  int64_t step = 0;
  int64_t tokens = 0;
  double wall = 0;  ///< seconds of training since the run's first start
  int64_t total_steps = -1;
};

class RunRecorder {
 public:
  /// Status events go to `sink`, which outlives the recorder.
  explicit RunRecorder(ProgressSink& sink, std::chrono::steady_clock::duration heartbeat_every =
                                               std::chrono::seconds(2));

  /// From now on the ends of the run are recorded through `run` (which outlives the recorder).
  /// A trainer that never calls it (a data-parallel rank other than 0) writes nothing: its ends
  /// only give their TrainResult.
  void record_into(store::RunWriter& run);
  /// The run's pending points, flushed by every end (or dropped by a failure that cannot write
  /// them). May be called again with another buffer.
  void buffer_points(store::MetricBuffer& points) { points_ = &points; }
  bool records() const { return run_ != nullptr; }

  /// The run (`name`, on `device`) trains from `at`: the `running` event, which names the
  /// database.
  void started(const RunPosition& at, const std::string& name, const std::string& device);
  /// Whether `heartbeat_every` has passed since the previous heartbeat (false when not recording).
  bool heartbeat_due() const;
  /// Writes the pending points and the heartbeat (step and tokens so far). A recent heartbeat is
  /// what keeps a running run from being shown as lost.
  void heartbeat(const RunPosition& at);

  /// The budget is trained.
  TrainResult finished(const RunPosition& at, double final_loss_smooth, double final_val_loss);
  /// Stopped on request (its checkpoint already written).
  TrainResult stopped(const RunPosition& at);
  /// `what` happened at `at.step` ("The loss became nan"): the message names the checkpoint a
  /// resume continues from, and the event adds the fix.
  TrainResult diverged(const RunPosition& at, const std::string& what);
  /// Failed with the user's sentence `message` and `exit_code`. Never throws: when the store
  /// refuses even this (it is what failed), the message says the run will show as lost.
  TrainResult failed(const RunPosition& at, std::string message, int exit_code);
  /// Stores the failure alone (no event: the caller throws it on, to whoever tells the user);
  /// false when the store refuses even that.
  bool record_failure(const RunPosition& at, const std::string& message);
  /// Ran out of memory on `device` with this batch: failed, with the sentence that says what the
  /// step needed and which batch_size / grad_accum would fit (out_of_memory_sentence), and
  /// kExitNoResource.
  TrainResult out_of_memory(const RunPosition& at, const std::string& device,
                            const MemoryAtFailure& memory, const TrainConfig& train);

 private:
  ProgressEvent status_event(RunStatus status, const RunPosition& at, std::string message) const;
  TrainResult result(RunStatus status, int exit_code, std::string error) const;
  // finished and stopped: points, heartbeat, status, event.
  void record_end(RunStatus status, const RunPosition& at);

  ProgressSink& sink_;
  std::chrono::steady_clock::duration heartbeat_every_;
  std::chrono::steady_clock::time_point last_heartbeat_;
  store::RunWriter* run_ = nullptr;
  store::MetricBuffer* points_ = nullptr;
};

}  // namespace mmlab
