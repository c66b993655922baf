// SPDX-License-Identifier: GPL-3.0-or-later
// Runs on a Slurm cluster, reached through its login host over SSH: one batch job per run
// (`sbatch`, with the host's partition, account, GPUs, time limit and extra #SBATCH lines) whose
// step is `srun mmlab train … --progress jsonl` (one rank per GPU). Its event stream goes to a
// log in the host's folder, followed by reading the file's new bytes while `squeue` still lists
// the job; `squeue`/`sacct` say where the job is; stop = `scancel --signal=TERM`. Each job writes
// its own results file (launches/TAG.sqlite: one writer, read only once the job has ended), so
// no database is ever shared between nodes.
#pragma once

#include <cstdint>
#include <string>

#include "core/remote/host.h"

namespace mmlab::remote {

struct Launch;

/// The batch script of one run: #SBATCH lines of the host's settings, one srun task per rank
/// (Host::ranks_per_run: one per GPU, else the host's CPU tasks) running `train_args` (the
/// shell words of the mmlab command line), rank 0's stdout into launches/TAG.jsonl. Each rank
/// has srun's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID: the data-parallel rank environment.
std::string slurm_batch_script(const Host& host, const std::string& tag,
                               const std::string& job_name, const std::string& train_args);

/// Writes the batch script for `train_args` (the words after `mmlab`) under DIR/launches and
/// submits it; `experiment_json` (empty for a resume) is stored as launches/TAG.json first.
/// Returns the job id. A refused submission (bad partition, account, limits) is a UserError
/// naming the host and Slurm's reason, and leaves no files of the launch behind.
int64_t submit_to_slurm(const Host& host, const std::string& tag, const std::string& job_name,
                        const std::string& train_args, const std::string& experiment_json);

/// Why Slurm would refuse a job of this host's settings (`sbatch --test-only`: a bad partition or
/// account, a time or GPU request over the limits), as one sentence; empty when it would not.
/// `unreachable` (when given) says whether the sentence is about ssh not reaching the host.
std::string slurm_refusal(const Host& host, bool* unreachable = nullptr);

/// The remote shell command that prints the launch's log from byte `offset` on, until the job
/// has left the queue and its last bytes are out.
std::string slurm_follow_command(const Host& host, const Launch& launch, int64_t offset);

/// `scancel --signal=TERM` of the launch's job (the trainer checkpoints and stops); a job still
/// PENDING is cancelled outright (it has no trainer to stop yet). false when the job is not in
/// the queue any more.
bool cancel_on_slurm(const Host& host, const Launch& launch);

/// The job's state: squeue's while it is queued or running (PENDING, RUNNING, …), then
/// sacct's (COMPLETED, FAILED, CANCELLED, TIMEOUT, …; from the job completion log when the
/// cluster has no accounting database). Empty when neither knows the job. `reason` (when given)
/// gets squeue's reason while the job waits (`Priority`, `Resources`, `BeginTime`, …).
std::string slurm_job_state(const Host& host, const Launch& launch, std::string* reason = nullptr);

}  // namespace mmlab::remote
