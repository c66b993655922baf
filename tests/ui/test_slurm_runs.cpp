// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's Slurm target against a one-node cluster started by the test (tests/e2e/
// slurm_cluster.h) behind a real sshd, with the real trainer: the Slurm proof driven
// through the main window and its run manager. A job Slurm holds PENDING is shown pending with
// no deadline, and Stop cancels it: its row (queued at the launch) ends stopped without a point;
// two runs launched at once both finish (sacct: COMPLETED);
// Stop of a third is scancel --signal=TERM, giving `stopped` with a checkpoint; the queue's
// Resume re-submits it with --resume, continuing its curve with no gap.
#include <gtest/gtest.h>

#include <QFileInfo>
#include <QTest>
#include <fstream>
#include <set>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/remote/slurm_runs.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "e2e/remote_test_support.h"
#include "e2e/slurm_cluster.h"
#include "e2e/ssh_server.h"
#include "process_support.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/main_window.h"
#include "ui/run_manager.h"

using namespace mmlab::ui;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;
namespace rs = mmlab::test::remote_support;

QString qpath(const fs::path& p) {
  return QString::fromStdString(p.string());
}

json experiment(const mmlab::test::TempDir& dir, int64_t steps,
                const std::vector<std::string>& runs) {
  std::ifstream in(rs::write_experiment(dir.path(), dir / "corpus", steps, runs));
  return json::parse(in);
}

bool all_done(const RunManager& m) {
  for (const RunJob& j : m.jobs())
    if (!is_done(j.state)) return false;
  return true;
}

}  // namespace

TEST(SlurmRunsInTheStudio, PendingIsShownFinishedStoppedAndResumedThroughTheSlurmTarget) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const std::string mmlab = MMLAB_BINARY_DIR "/app/mmlab";
  if (!QFileInfo(QString::fromStdString(mmlab)).isExecutable())
    GTEST_SKIP() << "build the mmlab target first.";
  mmlab::test::SlurmCluster cluster(dir / "slurm");
  if (!cluster.skip_reason().empty())
    GTEST_SKIP() << "Slurm tests skipped: " << cluster.skip_reason() << ".";
  mmlab::test::SshServer server(dir / "ssh", {{"XDG_DATA_HOME", (dir / "remote-xdg").string()},
                                              {"SLURM_CONF", cluster.conf()}});
  if (!server.skip_reason().empty())
    GTEST_SKIP() << "Slurm tests skipped: " << server.skip_reason() << ".";
  mmlab::test::ScopedEnv config("XDG_CONFIG_HOME", qpath(dir / "config"));
  mmlab::test::ScopedEnv bin("MMLAB_BIN", QString::fromStdString(mmlab));
  mmlab::remote::Host host = server.host("cluster");
  host.kind = mmlab::remote::HostKind::kSlurm;
  host.partition = "debug";
  host.time_limit = "00:10:00";
  host.mmlab = mmlab;
  host.dir = (dir / "remote").string();
  mmlab::remote::Host later = host;  // its jobs may start in an hour: PENDING (BeginTime)
  later.name = "cluster-later";
  later.sbatch_lines = {"--begin=now+3600"};
  {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    hosts.add(host);
    hosts.add(later);
    hosts.save();
  }
  mmlab::test::write_synthetic_corpus(dir / "corpus");
  const fs::path db = dir / "local.sqlite";
  MainWindow w(qpath(db));
  w.set_quiet(true);
  QString err;
  auto launches_on = [&](const std::string& name) {
    std::vector<mmlab::remote::Launch> out;
    auto book = mmlab::remote::LaunchBook::load(db);  // alive while its launches are read
    for (const auto& l : book.launches())
      if (l.host == name) out.push_back(l);
    return out;
  };

  // 1. Held by Slurm: pending, for as long as Slurm holds it; Stop cancels it, and its queued
  //    row ends stopped, nothing trained (the next studio does not queue it again).
  ASSERT_EQ(w.launch_experiment(experiment(dir, 20, {"held"}), &err, "cluster-later"), 1)
      << err.toStdString();
  const int held = w.manager().jobs()[0].key;
  ASSERT_TRUE(QTest::qWaitFor(
      [&] { return w.manager().job(held)->note.contains(QStringLiteral("PENDING")); }, 60000))
      << w.manager().job(held)->stderr_tail.toStdString();
  EXPECT_EQ(w.manager().job(held)->state, RunState::kStarting);
  const auto pending = launches_on("cluster-later");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(w.manager().job(held)->note.toStdString(),
            "Slurm job " + std::to_string(pending[0].job_id) +
                " is PENDING on cluster-later (BeginTime)");
  ASSERT_EQ(w.session().runs().size(), 1u);
  const mmlab::store::RunRow held_row = w.session().runs()[0];
  EXPECT_EQ(held_row.uuid, pending[0].uuid) << "the job is the queued row's";
  EXPECT_EQ(w.manager().job(held)->run_id, held_row.id);
  const auto listed = mmlab::remote::run_process({mmlab, "remote", "--db", db.string(), "list"});
  EXPECT_NE(listed.out.find(pending[0].tag + "  cluster-later  pending  run " +
                            std::to_string(held_row.id) + " (held, step 0/20)  job " +
                            std::to_string(pending[0].job_id) + " PENDING (BeginTime)"),
            std::string::npos)
      << listed.out << listed.err;
  ASSERT_TRUE(w.manager().stop(held));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(held)->state); }, 60000));
  EXPECT_EQ(w.manager().job(held)->state, RunState::kStopped)
      << w.manager().job(held)->stderr_tail.toStdString();
  EXPECT_EQ(mmlab::remote::slurm_job_state(later, pending[0]), "CANCELLED");
  {
    ASSERT_EQ(w.session().runs().size(), 1u);
    const mmlab::store::RunRow& r = w.session().runs()[0];
    EXPECT_EQ(r.id, held_row.id);
    EXPECT_EQ(r.status, mmlab::store::RunStatus::kStopped);
    EXPECT_EQ(r.step, 0);
    EXPECT_NE(r.error_text.find("cancelled before its trainer started"), std::string::npos)
        << r.error_text;
  }
  //    Resumed, it starts afresh (the host never had the run, so there is nothing to --resume):
  //    a new job of the same run and uuid, held again; stopped again, it ends as before.
  ASSERT_TRUE(w.manager().resume(held));
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        return launches_on("cluster-later").size() == 2 &&
               w.manager().job(held)->note.contains(QStringLiteral("PENDING"));
      },
      60000))
      << w.manager().job(held)->stderr_tail.toStdString();
  {
    const auto again = launches_on("cluster-later");
    ASSERT_EQ(again.size(), 2u);
    EXPECT_FALSE(again[1].resume);
    EXPECT_EQ(again[1].run_name, "held");
    EXPECT_EQ(again[1].uuid, held_row.uuid);
    EXPECT_EQ(again[1].experiment, pending[0].experiment) << "the copy already on the host";
    EXPECT_NE(again[1].job_id, pending[0].job_id);
  }
  ASSERT_TRUE(w.manager().stop(held));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(held)->state); }, 60000));
  EXPECT_EQ(w.manager().job(held)->state, RunState::kStopped)
      << w.manager().job(held)->stderr_tail.toStdString();
  ASSERT_EQ(w.session().runs().size(), 1u);
  EXPECT_EQ(w.session().runs()[0].status, mmlab::store::RunStatus::kStopped);

  // 2. Two runs launched together; a cluster takes both at once, and both finish.
  int most_active = 0;
  QObject::connect(&w.manager(), &RunManager::jobChanged, &w,
                   [&] { most_active = std::max(most_active, w.manager().active_count()); });
  ASSERT_EQ(w.launch_experiment(experiment(dir, 20, {"short-a", "short-b"}), &err, "cluster"), 2)
      << err.toStdString();
  ASSERT_TRUE(QTest::qWaitFor([&] { return all_done(w.manager()); }, 300000));
  EXPECT_EQ(most_active, 2) << "a Slurm host's jobs are submitted together";
  mmlab::store::OpenOptions ro;
  ro.mode = mmlab::store::Database::Mode::kReadOnly;
  {
    mmlab::store::ResultsStore local(db, ro);
    ASSERT_EQ(launches_on("cluster").size(), 2u);
    for (const auto& l : launches_on("cluster")) {
      EXPECT_EQ(mmlab::remote::slurm_job_state(host, l), "COMPLETED") << l.run_name;
      const auto run = local.reader().find_run_by_uuid(l.uuid);
      ASSERT_TRUE(run.has_value()) << l.run_name;
      EXPECT_EQ(run->status, mmlab::store::RunStatus::kFinished);
      EXPECT_EQ(run->step, 20);
      const auto remote = rs::all_points(dir / "remote" / l.db_file, l.uuid);
      const auto synced = rs::all_points(db, l.uuid);
      ASSERT_FALSE(remote.empty());
      EXPECT_EQ(synced.size(), remote.size());
      EXPECT_EQ(rs::difference(remote, synced), "");
    }
    for (const RunJob& j : w.manager().jobs()) {
      if (j.key != held) {
        EXPECT_EQ(j.state, RunState::kFinished) << j.message.toStdString();
      }
    }
  }

  // 3. Stop = scancel --signal=TERM: the trainer checkpoints and the run is stopped.
  ASSERT_EQ(w.launch_experiment(experiment(dir, 100000, {"long"}), &err, "cluster"), 1);
  const int long_key = w.manager().jobs().back().key;
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.manager().job(long_key)->step >= 3; }, 120000))
      << w.manager().job(long_key)->stderr_tail.toStdString();
  ASSERT_TRUE(w.manager().stop(long_key));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(long_key)->state); }, 120000));
  EXPECT_EQ(w.manager().job(long_key)->state, RunState::kStopped)
      << w.manager().job(long_key)->stderr_tail.toStdString();
  const int64_t run_id = w.manager().job(long_key)->run_id;
  int64_t stopped_at = 0;
  {
    mmlab::store::ResultsStore local(db, ro);
    const auto run = local.reader().get_run(run_id);
    EXPECT_EQ(run.status, mmlab::store::RunStatus::kStopped);
    stopped_at = run.step;
    const auto ckpt = local.reader().latest_checkpoint(run_id);
    ASSERT_TRUE(ckpt.has_value()) << "a stopped run checkpoints";
    EXPECT_EQ(ckpt->step, stopped_at);
    const auto l = launches_on("cluster").back();
    EXPECT_EQ(mmlab::remote::slurm_job_state(host, l), "COMPLETED") << "the trainer exited 0";
  }
  ASSERT_GE(stopped_at, 3);

  // 4. The queue's Resume re-submits it with --resume: the same run, no gap in its curve.
  ASSERT_TRUE(w.manager().resume(long_key));
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        const RunJob* j = w.manager().job(long_key);
        return j->state == RunState::kRunning && j->step >= stopped_at + 2;
      },
      120000))
      << w.manager().job(long_key)->stderr_tail.toStdString();
  EXPECT_EQ(launches_on("cluster").size(), 4u) << "one more job";
  ASSERT_TRUE(w.manager().stop(long_key));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(long_key)->state); }, 120000));
  EXPECT_EQ(w.manager().job(long_key)->state, RunState::kStopped);
  EXPECT_EQ(w.manager().job(long_key)->run_id, run_id);
  mmlab::store::ResultsStore local(db, ro);
  const auto loss = local.reader().points(run_id, "loss");
  ASSERT_GT(static_cast<int64_t>(loss.size()), stopped_at + 1);
  for (size_t i = 0; i < loss.size(); ++i) EXPECT_EQ(loss[i].step, static_cast<int64_t>(i) + 1);
  const auto resumed = launches_on("cluster").back();
  EXPECT_TRUE(resumed.resume);
  EXPECT_EQ(rs::all_points(db, resumed.uuid).size(),
            rs::all_points(dir / "remote" / resumed.db_file, resumed.uuid).size());
  EXPECT_EQ(local.reader().list_runs().size(),
            4u);  // held (stopped at step 0), short-a, short-b, long
}
