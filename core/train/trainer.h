// SPDX-License-Identifier: GPL-3.0-or-later
// The one trainer every family goes through: AdamW, warmup + cosine, clipping, accumulation, bf16
// autocast on CUDA; metrics to the results store (batched) and to a progress sink; atomic
// checkpoints; graceful stop on SIGTERM/SIGINT; resume; NaN/Inf -> diverged.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/config.h"
#include "core/results/run_status.h"

namespace mmlab {

class Rendezvous;

struct TrainerOptions {
  std::filesystem::path db;       ///< results database
  std::string progress = "auto";  ///< jsonl | bar | none | auto
  std::string experiment_name = "default";
  std::string experiment_spec = "{}";  ///< the experiment file, stored with the experiment
  /// The folder that holds one subfolder of checkpoints per run (named by its uuid). Empty: a new
  /// run uses data_home()/checkpoints, a resumed run the folder it used before (the run
  /// remembers it). Relative paths are made absolute at start, so a resume from another working
  /// directory finds the same files.
  std::filesystem::path checkpoint_root;
  /// Position of this run among the runs one command trains in a row (1-based; 0 = alone): the
  /// terminal bar's "run 2 of 4" and experiment ETA.
  int run_index = 0, run_count = 0;
  /// The rendezvous of a data-parallel command (docs/distributed.md): every rank trains the same
  /// runs in lockstep, rank 0 alone writes the database and the checkpoints. Null: one process,
  /// no process group at all.
  Rendezvous* ranks = nullptr;
  /// Seconds a rank waits for the others in a collective before its run fails.
  int rank_timeout_s = 300;
};

/// Where a resume continues from.
enum class ResumeFrom {
  kLatest,       ///< the run's newest checkpoint; refused when it is missing or damaged
  kLatestValid,  ///< the newest checkpoint whose size and content hash match the record
  kFile,         ///< ResumeOptions::checkpoint
  kRestart,      ///< step 0: the run's curve and checkpoints are discarded
};

struct ResumeOptions {
  ResumeFrom from = ResumeFrom::kLatest;
  std::filesystem::path checkpoint;  ///< for kFile
  std::string device;                ///< overrides the run's train.device when not empty
};

struct TrainResult {
  int64_t run_id = 0;
  RunStatus status = RunStatus::kFinished;  ///< finished | stopped | failed | diverged
  int exit_code = 0;                        ///< see ExitCode
  double final_loss_smooth = 0;
  double final_val_loss = 0;
  std::string error;  ///< the message when failed
};

/// Trains a new run to the end of its budget (or until stopped). User errors before the run
/// exists are thrown; errors after it exists mark it failed and are returned in TrainResult.
TrainResult train_new_run(const RunConfig& config, const TrainerOptions& options);

/// Starts a queued run (one whose row was written when its experiment was launched) from its
/// stored config; a failure while preparing it is kept in its row as `failed`.
/// Continues a stopped, failed, diverged or lost run from a checkpoint (see ResumeFrom). Every
/// reason to refuse (an unknown, finished or running run, a missing or damaged checkpoint, an
/// unwritable checkpoint folder) is a UserError thrown before the run is changed in any way; a
/// run with no checkpoint yet starts again from step 0.
TrainResult resume_run(int64_t run_id, const TrainerOptions& options,
                       const ResumeOptions& resume = {});

/// A data-parallel run splits every batch into equal shards: batch_size must divide by the world
/// size (a UserError saying so otherwise).
void check_batch_divides(const RunConfig& config, int world_size);

/// Rank 0 of a data-parallel command, after resume_run() returned or threw without starting its
/// run on the ranks: the other ranks skip it too. Does nothing when the run did start.
void skip_unstarted_run(Rendezvous& ranks, int sessions_before);
/// Rank 0: no more runs follow; the other ranks end with `exit_code` (0 when all went well).
/// Returns once they have all read it (or after wait_s).
void release_ranks(Rendezvous& ranks, int exit_code, int wait_s);
/// Every rank but 0: trains each run rank 0 trains, in lockstep, until rank 0 releases it.
/// Returns the exit code (the worst of its runs', or the one rank 0 released it with).
int follow_rank0(const TrainerOptions& options);

/// Refuses, with the trainer's own sentence, a checkpoint folder (TrainerOptions::checkpoint_root,
/// empty = the default) that cannot be created or written: for launches, before any run is queued.
void check_checkpoint_root(const std::filesystem::path& root);

/// Asks the running trainer to finish its step, checkpoint and stop (async-signal-safe).
void request_stop();
bool stop_requested();
/// Forgets an earlier request (for a process that trains again afterwards, e.g. tests).
void clear_stop_request();
/// SIGTERM and SIGINT call request_stop().
void install_stop_handlers();

}  // namespace mmlab
