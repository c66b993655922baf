// SPDX-License-Identifier: GPL-3.0-or-later
// Runs on a Slurm cluster through its login host: a one-node cluster started by the test
// (slurm_cluster.h) behind a real sshd. Two runs reach `finished` as sacct sees them, scancel
// --signal=TERM of a third gives `stopped` with a checkpoint, and resubmitting it with --resume
// continues its curve with no gap; a refused sbatch names the host and Slurm's reason and leaves
// no files of the launch.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/remote/host.h"
#include "core/remote/slurm_runs.h"
#include "core/remote/ssh.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "e2e/remote_test_support.h"
#include "e2e/slurm_cluster.h"
#include "e2e/ssh_server.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::remote_support::all_points;
using test::remote_support::difference;
using test::remote_support::Stream;

class SlurmRemote : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<test::SlurmCluster>(dir_ / "slurm");
    if (!cluster_->skip_reason().empty()) {
      GTEST_SKIP() << "Slurm tests skipped: " << cluster_->skip_reason() << ".";
    }
    server_ = std::make_unique<test::SshServer>(
        dir_ / "ssh",
        std::map<std::string, std::string>{{"XDG_DATA_HOME", (dir_ / "remote-xdg").string()},
                                           {"SLURM_CONF", cluster_->conf()}});
    if (!server_->skip_reason().empty()) {
      GTEST_SKIP() << "Slurm tests skipped: " << server_->skip_reason() << ".";
    }
    test::write_synthetic_corpus(dir_ / "corpus");
    host_ = server_->host("cluster");
    host_.kind = remote::HostKind::kSlurm;
    host_.partition = "debug";
    host_.time_limit = "00:10:00";
    host_.mmlab = test::mmlab_binary();
    host_.dir = (dir_ / "remote").string();
  }

  remote::Launch submit(int64_t steps, const std::string& run) {
    remote::LaunchRequest req;
    req.experiment_file = test::remote_support::write_experiment(
        dir_.path(), dir_ / "corpus", steps, {"short-a", "short-b", "long"});
    req.run_name = run;
    return remote::start_on_host(host_, req);
  }

  // Follows the launch to its end; returns what was read.
  Stream follow_to_end(const remote::Launch& l) {
    Stream s;
    remote::LineProcess follower(remote::follow_argv(host_, l, 0));
    s.read_to_end(follower);
    EXPECT_EQ(follower.wait(), 0) << follower.err();
    return s;
  }

  void expect_synced(const remote::Launch& l) {
    const auto local = all_points(dir_ / "local.sqlite", l.uuid);
    const auto remote = all_points(dir_ / "remote" / l.db_file, l.uuid);
    ASSERT_FALSE(remote.empty());
    EXPECT_EQ(local.size(), remote.size());
    EXPECT_EQ(difference(remote, local), "");
    EXPECT_EQ(difference(local, remote), "");
  }

  test::TempDir dir_;
  std::unique_ptr<test::SlurmCluster> cluster_;
  std::unique_ptr<test::SshServer> server_;
  remote::Host host_;
};

TEST_F(SlurmRemote, RunsFinishStopWithACheckpointAndResumeWithoutAGap) {
  remote::Launch a = submit(20, "short-a");
  remote::Launch b = submit(20, "short-b");
  EXPECT_GT(a.job_id, 0);
  EXPECT_NE(a.job_id, b.job_id);
  store::ResultsStore local(dir_ / "local.sqlite");

  for (remote::Launch* l : {&a, &b}) {
    const Stream s = follow_to_end(*l);
    ASSERT_FALSE(s.statuses.empty()) << "no status from job " << l->job_id;
    EXPECT_EQ(s.statuses.back(), "finished");
    EXPECT_EQ(s.last_step, 20);
    EXPECT_EQ(remote::slurm_job_state(host_, *l), "COMPLETED");
    const auto r = remote::sync_from_host(host_, *l, local);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(local.reader().get_run(r->run_id).status, store::RunStatus::kFinished);
    expect_synced(*l);
  }

  // A budget the test never waits for: this one ends by scancel --signal=TERM.
  remote::Launch c = submit(100000, "long");
  Stream s;
  {
    remote::LineProcess follower(remote::follow_argv(host_, c, 0));
    ASSERT_TRUE(s.read_until(follower, [](const json& j) {
      return j["event"] == "step" && j["step"].get<int64_t>() >= 3;
    }));
    EXPECT_TRUE(remote::stop_on_host(host_, c));
    s.read_to_end(follower);
    EXPECT_EQ(follower.wait(), 0);
  }
  ASSERT_FALSE(s.statuses.empty());
  EXPECT_EQ(s.statuses.back(), "stopped");
  EXPECT_GE(s.checkpoints, 1) << "a stopped run checkpoints";
  EXPECT_EQ(remote::slurm_job_state(host_, c), "COMPLETED");  // the trainer exited 0
  EXPECT_FALSE(remote::stop_on_host(host_, c)) << "the job has left the queue";
  const auto stopped = remote::sync_from_host(host_, c, local);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(local.reader().get_run(stopped->run_id).status, store::RunStatus::kStopped);
  EXPECT_EQ(stopped->last_step, s.last_step);

  // Resubmitted with --resume: the same run, its curve continued from the checkpoint.
  remote::LaunchRequest again;
  again.resume_uuid = c.uuid;
  again.resume_db_file = c.db_file;
  remote::Launch resumed = remote::start_on_host(host_, again);
  Stream t;
  {
    remote::LineProcess follower(remote::follow_argv(host_, resumed, 0));
    ASSERT_TRUE(t.read_until(follower, [&](const json& j) {
      return j["event"] == "step" && j["step"].get<int64_t>() >= s.last_step + 3;
    }));
    EXPECT_EQ(t.loss.begin()->first, s.last_step + 1) << "the resumed curve starts after the stop";
    EXPECT_TRUE(remote::stop_on_host(host_, resumed));
    t.read_to_end(follower);
    EXPECT_EQ(follower.wait(), 0);
  }
  const auto after = remote::sync_from_host(host_, resumed, local);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->run_id, stopped->run_id);
  expect_synced(resumed);
  const auto loss = local.reader().points(after->run_id, "loss");
  ASSERT_EQ(static_cast<int64_t>(loss.size()), t.last_step);
  for (size_t i = 0; i < loss.size(); ++i) EXPECT_EQ(loss[i].step, static_cast<int64_t>(i) + 1);
  EXPECT_EQ(local.reader().list_runs().size(), 3u);
}

// A host with two CPU ranks per run: one srun of two tasks, each with srun's rank variables
// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID); rank 0's stdout alone is the followed stream, and
// each rank's stderr has its own file. (What runs as the ranks here is a shell line that prints
// its environment; the data-parallel trainer reads the same variables.)
TEST_F(SlurmRemote, TwoRanksPerRunAreTwoSrunTasksWithTheRankEnvironment) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "the test node has one CPU.";
  host_.tasks = 2;
  remote::Launch l;
  l.tag = "two-ranks";
  l.host = host_.name;
  const std::string ranks = "sh -c " + remote::shell_quote(
                                           "echo rank=$SLURM_PROCID of=$SLURM_NTASKS "
                                           "local=$SLURM_LOCALID; "
                                           "echo stderr-of-$SLURM_PROCID >&2");
  l.job_id = remote::submit_to_slurm(host_, l.tag, "ranks", ranks, "");
  std::vector<std::string> lines;
  {
    remote::LineProcess follower(remote::follow_argv(host_, l, 0));
    for (std::string line; follower.read_line(line);) lines.push_back(line);
    EXPECT_EQ(follower.wait(), 0) << follower.err();
  }
  EXPECT_EQ(remote::slurm_job_state(host_, l), "COMPLETED");
  EXPECT_EQ(lines, std::vector<std::string>{"rank=0 of=2 local=0"});
  auto text = [&](const std::string& file) {
    std::ifstream in(dir_ / "remote" / "launches" / file);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_EQ(text("two-ranks.err"), "stderr-of-0\n");
  EXPECT_EQ(text("two-ranks.err.1"), "stderr-of-1\n");
}

// The same with the real trainer: a run of two CPU ranks (Gloo) is one Slurm job whose ranks meet
// through srun's environment; it finishes with one run, written by rank 0 alone, that comes home
// with every point once.
TEST_F(SlurmRemote, ARunOfTwoCpuRanksIsOneJobAndOneRun) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "the test node has one CPU.";
  host_.tasks = 2;
  remote::Launch l = submit(12, "short-a");
  const Stream s = follow_to_end(l);
  ASSERT_FALSE(s.statuses.empty()) << "no status from job " << l.job_id;
  EXPECT_EQ(s.statuses.back(), "finished");
  EXPECT_EQ(s.last_step, 12);
  EXPECT_EQ(remote::slurm_job_state(host_, l), "COMPLETED");
  store::ResultsStore local(dir_ / "local.sqlite");
  const auto r = remote::sync_from_host(host_, l, local);
  ASSERT_TRUE(r.has_value());
  expect_synced(l);
  const auto runs = local.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, store::RunStatus::kFinished);
  EXPECT_EQ(runs[0].step, 12);
  EXPECT_NE(runs[0].device.find("x 2 ranks"), std::string::npos) << runs[0].device;
  store::OpenOptions ro;
  ro.mode = store::Database::Mode::kReadOnly;
  EXPECT_EQ(store::ResultsStore(dir_ / "remote" / l.db_file, ro).reader().list_runs().size(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "remote" / "launches" / (l.tag + ".err.1"))) << "rank 1 ran";
}

TEST_F(SlurmRemote, RefusedSubmissionNamesTheHostAndLeavesNothing) {
  EXPECT_TRUE(remote::check_host(host_).ok) << remote::check_host(host_).problem;
  host_.partition = "no-such-partition";
  // Checked before anything is queued (what the studio's Launch runs): sbatch --test-only.
  const auto check = remote::check_host(host_);
  EXPECT_FALSE(check.ok);
  EXPECT_EQ(check.problem.rfind("Slurm on the host cluster refused the job (", 0), 0u)
      << check.problem;
  EXPECT_NE(check.problem.find("nvalid partition"), std::string::npos) << check.problem;
  try {
    submit(20, "short-a");
    FAIL() << "sbatch accepted a job for a partition that does not exist";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("Slurm on the host cluster refused the job ("),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("nvalid partition"), std::string::npos) << e.what();
  }
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir_ / "remote" / "launches", ec)) {
    ADD_FAILURE() << "left behind: " << f.path();
  }
}

}  // namespace
}  // namespace mmlab
