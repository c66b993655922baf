// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/run_recorder.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "core/store/run_writer.h"

namespace mmlab {

RunRecorder::RunRecorder(ProgressSink& sink, std::chrono::steady_clock::duration heartbeat_every)
    : sink_(sink),
      heartbeat_every_(heartbeat_every),
      last_heartbeat_(std::chrono::steady_clock::now()) {}

void RunRecorder::record_into(store::RunWriter& run) {
  run_ = &run;
}

void RunRecorder::started(const RunPosition& at, const std::string& name,
                          const std::string& device) {
  if (!run_) return;
  ProgressEvent e = status_event(RunStatus::kRunning, at, "");
  e.name = name;
  e.db = run_->path().string();
  e.device = device;
  sink_.emit(std::move(e));
}

bool RunRecorder::heartbeat_due() const {
  return run_ && std::chrono::steady_clock::now() - last_heartbeat_ >= heartbeat_every_;
}

void RunRecorder::heartbeat(const RunPosition& at) {
  if (!run_) return;
  if (points_) points_->flush();
  run_->heartbeat(at.step, at.tokens);
  last_heartbeat_ = std::chrono::steady_clock::now();
}

ProgressEvent RunRecorder::status_event(RunStatus status, const RunPosition& at,
                                        std::string message) const {
  ProgressEvent e;
  e.kind = EventKind::kStatus;
  e.status = status;
  e.step = at.step;
  e.total_steps = at.total_steps;
  e.message = std::move(message);
  e.wall = at.wall;
  return e;
}

TrainResult RunRecorder::result(RunStatus status, int exit_code, std::string error) const {
  TrainResult r;
  r.run_id = run_ ? run_->run_id() : 0;
  r.status = status;
  r.exit_code = exit_code;
  r.error = std::move(error);
  return r;
}

void RunRecorder::record_end(RunStatus status, const RunPosition& at) {
  if (points_) points_->flush();
  run_->heartbeat(at.step, at.tokens);
  run_->set_status(status);
  sink_.emit(status_event(status, at, ""));
}

TrainResult RunRecorder::finished(const RunPosition& at, double final_loss_smooth,
                                  double final_val_loss) {
  if (run_) record_end(RunStatus::kFinished, at);
  TrainResult r = result(RunStatus::kFinished, exit_code_of(RunStatus::kFinished), "");
  r.final_loss_smooth = final_loss_smooth;
  r.final_val_loss = final_val_loss;
  return r;
}

TrainResult RunRecorder::stopped(const RunPosition& at) {
  if (run_) record_end(RunStatus::kStopped, at);
  return result(RunStatus::kStopped, exit_code_of(RunStatus::kStopped), "");
}

TrainResult RunRecorder::diverged(const RunPosition& at, const std::string& what) {
  const int code = exit_code_of(RunStatus::kDiverged);
  const std::string where = what + " at step " + std::to_string(at.step);
  if (!run_) return result(RunStatus::kDiverged, code, where + ".");
  // The newest checkpoint is finite: none is written once the run has diverged.
  const auto kept = run_->latest_checkpoint();
  const std::string message =
      where + "; " +
      (kept ? "the last good checkpoint (step " + std::to_string(kept->step) + ", " + kept->path +
                  ") is kept."
            : "no checkpoint had been written before it.");
  if (points_) points_->flush();
  run_->set_status(RunStatus::kDiverged, message);
  sink_.emit(
      status_event(RunStatus::kDiverged, at, message + " Lower train.lr or raise warmup_frac."));
  return result(RunStatus::kDiverged, code, message);
}

TrainResult RunRecorder::failed(const RunPosition& at, std::string message, int exit_code) {
  if (!run_) return result(RunStatus::kFailed, exit_code, std::move(message));
  // The pending points are written, or dropped when that fails: a full disk refuses them again
  // on every try, and the failed status is what must still get through.
  try {
    if (points_) points_->flush();
  } catch (const std::exception&) {
    points_->discard();
  }
  if (!record_failure(at, message)) {
    message += " The run could not be marked failed in " + run_->path().string() +
               " either, so it shows as lost once its heartbeat is stale.";
  }
  sink_.emit(status_event(RunStatus::kFailed, at, message));
  return result(RunStatus::kFailed, exit_code, std::move(message));
}

bool RunRecorder::record_failure(const RunPosition& at, const std::string& message) {
  if (!run_) return false;
  try {
    run_->set_status(RunStatus::kFailed, message);
  } catch (const std::exception&) {
    return false;
  }
  try {
    run_->add_event(
        std::string(to_string(EventKind::kStatus)),
        nlohmann::json{{"status", std::string(to_string(RunStatus::kFailed))}, {"message", message}}
            .dump(),
        at.step, at.wall);
  } catch (const std::exception&) {
    // The stored status already says it; the event only repeats it for the timeline.
  }
  return true;
}

TrainResult RunRecorder::out_of_memory(const RunPosition& at, const std::string& device,
                                       const MemoryAtFailure& memory, const TrainConfig& train) {
  return failed(
      at, out_of_memory_sentence(device, memory, train.batch_size, train.seq_len, train.grad_accum),
      kExitNoResource);
}

}  // namespace mmlab
