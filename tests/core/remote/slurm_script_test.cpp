// SPDX-License-Identifier: GPL-3.0-or-later
// The batch script of a Slurm run: its #SBATCH lines follow the host's settings, a host with N
// GPUs (or N CPU ranks) asks for N tasks under one srun, and the script's per-rank wrapper is
// run here by a real `sh` with the variable srun gives each rank: rank 0's stdout is the run's
// event stream, every rank keeps its stderr.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/remote/slurm_runs.h"
#include "core/remote/ssh.h"
#include "test_support.h"

namespace mmlab::remote {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& script, const std::string& line) {
  for (const auto& l : lines_of(script))
    if (l == line) return true;
  return false;
}

// The script's srun line, and what srun runs as each task (the words after srun's options).
std::string srun_line(const std::string& script) {
  for (const auto& l : lines_of(script))
    if (l.rfind("exec srun ", 0) == 0) return l;
  return "";
}

std::string task_command(const std::string& script) {
  const std::string line = srun_line(script);
  const size_t at = line.find(" sh -c '");
  return at == std::string::npos ? "" : line.substr(at + 1);
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Host cluster() {
  Host h;
  h.name = "hpc";
  parse_target("slurm://me@login", h);
  h.dir = "/scratch/me";
  h.partition = "gpu";
  h.time_limit = "02:00:00";
  return h;
}

const std::string kTrain = "mmlab train launches/T.json --run 'a b' --db results.sqlite";

TEST(SlurmBatchScript, OneRankByDefaultWithTheHostsSettings) {
  Host h = cluster();
  h.account = "proj";
  h.sbatch_lines = {"--mem=32G"};
  const std::string s = slurm_batch_script(h, "T", "a b", kTrain);
  EXPECT_EQ(s.rfind("#!/bin/sh\n", 0), 0u) << s;
  for (const char* line :
       {"#SBATCH --job-name=mmlab-a_b", "#SBATCH --output=launches/T.out", "#SBATCH --ntasks=1",
        "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --time=02:00:00",
        "#SBATCH --mem=32G"}) {
    EXPECT_TRUE(has_line(s, line)) << line << " missing in\n" << s;
  }
  EXPECT_EQ(s.find("--gpus-per-task"), std::string::npos) << s;
  EXPECT_EQ(s.find("--kill-on-bad-exit"), std::string::npos) << s;
  EXPECT_EQ(srun_line(s).rfind("exec srun --ntasks=1 sh -c '", 0), 0u) << s;
  EXPECT_NE(srun_line(s).find("' sh " + kTrain), std::string::npos) << s;
}

TEST(SlurmBatchScript, GpusPerRunAreRanksOfOneGpuEach) {
  Host h = cluster();
  h.gpus = 4;
  h.tasks = 2;  // GPUs decide
  const std::string s = slurm_batch_script(h, "T", "r", kTrain);
  EXPECT_TRUE(has_line(s, "#SBATCH --ntasks=4")) << s;
  EXPECT_TRUE(has_line(s, "#SBATCH --gpus-per-task=1")) << s;
  EXPECT_EQ(srun_line(s).rfind("exec srun --ntasks=4 --kill-on-bad-exit=1 sh -c '", 0), 0u) << s;
}

TEST(SlurmBatchScript, CpuTasksPerRunWithoutGpus) {
  Host h = cluster();
  h.tasks = 3;
  const std::string s = slurm_batch_script(h, "T", "r", kTrain);
  EXPECT_TRUE(has_line(s, "#SBATCH --ntasks=3")) << s;
  EXPECT_EQ(s.find("--gpus-per-task"), std::string::npos) << s;
  EXPECT_EQ(srun_line(s).rfind("exec srun --ntasks=3 --kill-on-bad-exit=1 ", 0), 0u) << s;
}

TEST(SlurmBatchScript, RankZeroWritesTheEventStreamEveryRankItsStderr) {
  test::TempDir dir;
  fs::create_directories(dir / "launches");
  Host h = cluster();
  h.tasks = 2;
  const std::string train =
      "sh -c " + shell_quote("echo out-$SLURM_PROCID; echo err-$SLURM_PROCID >&2");
  const std::string task = task_command(slurm_batch_script(h, "T", "r", train));
  ASSERT_FALSE(task.empty());
  for (const char* rank : {"0", "1"}) {
    const ProcessOutput r = run_process({"env", std::string("SLURM_PROCID=") + rank, "sh", "-c",
                                         "cd " + shell_quote((dir / "").string()) + " && " + task});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "") << "a rank's output goes to files, not to srun";
  }
  EXPECT_EQ(read(dir / "launches" / "T.jsonl"), "out-0\n");
  EXPECT_EQ(read(dir / "launches" / "T.err"), "err-0\n");
  EXPECT_EQ(read(dir / "launches" / "T.err.1"), "err-1\n");
}

}  // namespace
}  // namespace mmlab::remote
