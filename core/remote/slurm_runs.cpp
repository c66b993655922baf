// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/slurm_runs.h"

#include "core/remote/remote_shell.h"
#include "core/remote/ssh.h"
#include "core/remote/ssh_runs.h"
#include "core/util/error.h"

namespace mmlab::remote {

namespace {

std::string job_word(const Launch& launch) {
  return std::to_string(launch.job_id);
}

// A job name Slurm and every shell accept.
std::string safe_name(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_' || c == '.';
    out += plain ? c : '_';
  }
  return out;
}

std::string slurm_header(const Host& host, const std::string& job_name, const std::string& output) {
  std::string script = "#!/bin/sh\n#SBATCH --job-name=mmlab-" + safe_name(job_name) +
                       "\n#SBATCH --output=" + output + "\n";
  script += "#SBATCH --ntasks=" + std::to_string(host.ranks_per_run()) + "\n";
  if (host.gpus > 0) script += "#SBATCH --gpus-per-task=1\n";
  if (!host.partition.empty()) script += "#SBATCH --partition=" + host.partition + "\n";
  if (!host.account.empty()) script += "#SBATCH --account=" + host.account + "\n";
  if (!host.time_limit.empty()) script += "#SBATCH --time=" + host.time_limit + "\n";
  for (const auto& line : host.sbatch_lines) script += "#SBATCH " + line + "\n";
  return script;
}

std::string refusal_sentence(const Host& host, const ProcessOutput& out) {
  std::string why = last_line(out.err);
  if (why.rfind("sbatch: error: ", 0) == 0) why = why.substr(15);
  while (!why.empty() && (why.back() == '.' || why.back() == ' ')) why.pop_back();
  return "Slurm on the host " + host.name + " refused the job (" +
         (why.empty() ? "no reason given" : why) +
         "). Fix the host's partition, account, GPUs or time limit (`mmlab hosts remove " +
         host.name + "` and add it again) and submit again.";
}

}  // namespace

std::string slurm_batch_script(const Host& host, const std::string& tag,
                               const std::string& job_name, const std::string& train_args) {
  const std::string l = "launches/" + tag;
  std::string script = slurm_header(host, job_name, l + ".out");
  const int ranks = host.ranks_per_run();
  // exec: the batch shell becomes srun, which passes scancel's SIGTERM to the ranks. Each rank
  // finds its place in srun's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (the trainer's rank
  // environment, which also derives the rendezvous from the job's node list and id). Rank 0's
  // stdout is the run's event stream; every rank keeps its own stderr (a failing rank says why
  // in its own file), and one rank's failure ends the others (--kill-on-bad-exit).
  script += "exec srun --ntasks=" + std::to_string(ranks) +
            (ranks > 1 ? " --kill-on-bad-exit=1" : "") +
            " sh -c 'if [ \"${SLURM_PROCID:-0}\" = 0 ]; then exec \"$@\" > " + l + ".jsonl 2> " +
            l + ".err; else exec \"$@\" > /dev/null 2> " + l + ".err.$SLURM_PROCID; fi' sh " +
            train_args + "\n";
  return script;
}

int64_t submit_to_slurm(const Host& host, const std::string& tag, const std::string& job_name,
                        const std::string& train_args, const std::string& experiment_json) {
  const std::string l = "launches/" + tag;
  const std::string script = slurm_batch_script(host, tag, job_name, train_args);

  const std::string d = remote_path(host);
  std::string cmd = "set -e; mkdir -p " + d + "/launches " + d + "/checkpoints; cd " + d + "; ";
  if (!experiment_json.empty()) cmd += "cat > " + l + ".json; ";
  cmd += "cat > " + l + ".sbatch <<'MMLAB_SBATCH_END'\n" + script + "MMLAB_SBATCH_END\n";
  // A refused job leaves nothing of the launch behind.
  cmd += "sbatch --parsable " + l + ".sbatch || { rm -f " + l + ".json " + l + ".sbatch; exit 3; }";
  const ProcessOutput out = run_on_host(host, cmd, experiment_json);
  if (unreachable(out)) throw unreachable_error(host, out);
  // --parsable prints "jobid" or "jobid;cluster".
  const std::string answer = last_line(out.out);
  const std::string id = answer.substr(0, answer.find(';'));
  if (out.exit_code != 0 || id.empty() || id.find_first_not_of("0123456789") != id.npos) {
    throw UserError(refusal_sentence(host, out), "");
  }
  return std::stoll(id);
}

std::string slurm_refusal(const Host& host, bool* away) {
  // sbatch --test-only checks the job's options against the cluster (partition, account,
  // limits) and submits nothing.
  const std::string script = slurm_header(host, "check", "/dev/null") + "true\n";
  const ProcessOutput out = run_on_host(
      host, "sbatch --test-only <<'MMLAB_SBATCH_END'\n" + script + "MMLAB_SBATCH_END\n");
  if (away) *away = unreachable(out);
  if (unreachable(out)) return unreachable_sentence(host, out);
  return out.exit_code == 0 ? "" : refusal_sentence(host, out);
}

std::string slurm_follow_command(const Host& host, const Launch& launch, int64_t offset) {
  // Whole bytes [off, size) of the file each round, so nothing is printed twice or skipped
  // whatever the file system's timing; the last round comes after the job has left the queue.
  return "cd " + remote_path(host) + " || exit 1; f=launches/" + launch.tag +
         ".jsonl; off=" + std::to_string(offset) + "; while :; do alive=$(squeue -h -j " +
         job_word(launch) +
         " -o %i 2>/dev/null); size=$(stat -c %s \"$f\" 2>/dev/null || echo 0); "
         "if [ \"$size\" -gt \"$off\" ]; then tail -c +$((off + 1)) \"$f\" | head -c "
         "$((size - off)); off=$size; fi; [ -n \"$alive\" ] || break; sleep 1; done";
}

bool cancel_on_slurm(const Host& host, const Launch& launch) {
  const std::string j = job_word(launch);
  const ProcessOutput out =
      run_on_host(host, "s=$(squeue -h -j " + j + " -o %T 2>/dev/null); [ -n \"$s\" ] || exit 3; " +
                            "if [ \"$s\" = PENDING ]; then scancel " + j +
                            "; else scancel --signal=TERM " + j + "; fi");
  if (unreachable(out)) throw unreachable_error(host, out);
  return out.exit_code == 0;
}

std::string slurm_job_state(const Host& host, const Launch& launch, std::string* reason) {
  const std::string j = job_word(launch);
  // sacct -c reads the job completion log (JobCompType=jobcomp/filetxt) where the cluster has
  // no accounting database; with one, plain sacct answers first.
  const ProcessOutput out = run_on_host(
      host, "s=$(squeue -h -j " + j + " -o '%T %r' 2>/dev/null); [ -n \"$s\" ] && { echo \"$s\"; " +
                "exit 0; }; s=$(sacct -n -P -X -j " + j +
                " -o State 2>/dev/null | grep -v 'accounting storage' | head -n 1); " +
                "[ -n \"$s\" ] && { echo \"$s\"; exit 0; }; sacct -c -n -P -j " + j +
                " -o State 2>/dev/null | head -n 1");
  if (unreachable(out)) throw unreachable_error(host, out);
  // "PENDING BeginTime" (squeue), "CANCELLED by 0" (sacct): the state is the first word.
  const std::string line = last_line(out.out);
  const size_t space = line.find(' ');
  const std::string state = line.substr(0, space);
  if (reason) {
    *reason = space == std::string::npos || state != "PENDING" ? "" : line.substr(space + 1);
  }
  return state;
}

}  // namespace mmlab::remote
