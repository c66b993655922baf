// SPDX-License-Identifier: GPL-3.0-or-later
// The one trainer every family goes through: AdamW, warmup + cosine, clipping, accumulation, bf16
// autocast on CUDA; metrics to the results store (batched) and to a progress sink; atomic
// checkpoints; graceful stop on SIGTERM/SIGINT; resume; NaN/Inf -> diverged.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/config.h"

namespace mmlab {

struct TrainerOptions {
  std::filesystem::path db;       ///< results database
  std::string progress = "auto";  ///< jsonl | bar | none | auto
  std::string experiment_name = "default";
  std::string experiment_spec = "{}";     ///< the experiment file, stored with the experiment
  std::filesystem::path checkpoint_root;  ///< empty: data_home()/checkpoints
};

struct TrainResult {
  int64_t run_id = 0;
  std::string status;  ///< finished | stopped | failed | diverged
  int exit_code = 0;   ///< see ExitCode
  double final_loss_smooth = 0;
  double final_val_loss = 0;
  std::string error;  ///< the message when failed
};

/// Trains a new run to the end of its budget (or until stopped). User errors before the run
/// exists are thrown; errors after it exists mark it failed and are returned in TrainResult.
TrainResult train_new_run(const RunConfig& config, const TrainerOptions& options);

/// Continues a stopped, failed, diverged or lost run from its last checkpoint.
TrainResult resume_run(int64_t run_id, const TrainerOptions& options);

/// Asks the running trainer to finish its step, checkpoint and stop (async-signal-safe).
void request_stop();
bool stop_requested();
/// Forgets an earlier request (for a process that trains again afterwards, e.g. tests).
void clear_stop_request();
/// SIGTERM and SIGINT call request_stop().
void install_stop_handlers();

}  // namespace mmlab
