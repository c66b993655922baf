// SPDX-License-Identifier: GPL-3.0-or-later
// The launcher without a window: a real database, a run manager whose queue is paused (so the
// jobs it is handed are looked at, not run), and for the Slurm queue the fake trainer.
#include <gtest/gtest.h>

#include <QDir>
#include <QFile>
#include <QTest>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/remote/host.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/launcher.h"
#include "ui/results_session.h"
#include "ui/run_manager.h"

using namespace mmlab::ui;
using mmlab::store::RunStatus;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

QString qpath(const fs::path& p) {
  return QString::fromStdString(p.string());
}

struct LauncherTest : ::testing::Test {
  void SetUp() override {
    mmlab::test::qt_app();
    // Hosts of our own (none unless a test adds one), never the user's.
    env.emplace_back(
        std::make_unique<mmlab::test::ScopedEnv>("XDG_CONFIG_HOME", qpath(dir / "config")));
    env.emplace_back(std::make_unique<mmlab::test::ScopedEnv>("FAKE_LOG", std::nullopt));
    fs::create_directories(dir / "corpus");
    std::ofstream(dir / "corpus" / "a.txt") << "text";
    QString err;
    ASSERT_TRUE(session.open(qpath(dir / "results.sqlite"), &err)) << err.toStdString();
    manager.set_paused(true);
    QObject::connect(&launcher, &Launcher::message,
                     [this](const QString& text, int) { messages << text; });
  }
  void TearDown() override {
    manager.stop_all();
    EXPECT_TRUE(QTest::qWaitFor([&] { return manager.active_count() == 0; }, 10000));
  }

  json experiment(const std::string& name, const std::vector<std::string>& runs,
                  const json& data = {}) const {
    json list = json::array();
    for (const std::string& r : runs) list.push_back({{"name", r}});
    return {{"name", name},
            {"defaults",
             {{"model", {{"d_model", 32}, {"n_block", 1}, {"family", "mamba"}}},
              {"train", {{"steps", 50}, {"device", "cpu"}}},
              {"data", data.is_null()
                           ? json{{"source", (dir / "corpus").string()}, {"tokenizer", "byte"}}
                           : data}}},
            {"runs", list}};
  }
  QStringList experiment_files() const {
    return QDir(experiments_dir_for(session.path())).entryList({"*.json"}, QDir::Files);
  }
  const mmlab::store::RunRow& row(const QString& name) const {
    for (const auto& r : session.runs())
      if (r.name == name.toStdString()) return r;
    throw std::runtime_error("no row " + name.toStdString());
  }
  QStringList train_args(const QString& file, const QString& run) const {
    return {"train", file, "--run", run, "--db", session.path(), "--progress=jsonl"};
  }
  QStringList resume_args(int64_t id) const {
    return {"train", "--resume", QString::number(id), "--db", session.path(), "--progress=jsonl"};
  }
  void add_host(const std::string& name, mmlab::remote::HostKind kind) {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    mmlab::remote::Host h;
    h.name = name;
    h.kind = kind;
    h.address = "login.example.org";
    h.dir = "/srv/mmlab";
    hosts.add(h);
    hosts.save();
  }

  mmlab::test::TempDir dir;
  std::vector<std::unique_ptr<mmlab::test::ScopedEnv>> env;
  ResultsSession session;
  RunManager manager{QStringLiteral("mmlab-is-never-started")};
  Launcher launcher{session, manager};
  QStringList messages;
};

}  // namespace

TEST_F(LauncherTest, ALaunchWritesTheFileAndQueuesOneRowAndOneJobPerRun) {
  const json doc = experiment("three", {"a", "b", "c"});
  QString err;
  ASSERT_EQ(launcher.launch_experiment(doc, &err, "local", 2), 3) << err.toStdString();
  // The file the trainers read is exactly what was launched, beside the database.
  const QStringList files = experiment_files();
  ASSERT_EQ(files.size(), 1);
  EXPECT_TRUE(files[0].startsWith("three-")) << files[0].toStdString();
  const QString file = QDir(experiments_dir_for(session.path())).filePath(files[0]);
  std::ifstream in(file.toStdString());
  EXPECT_EQ(json::parse(in), doc);

  ASSERT_EQ(session.runs().size(), 3u);
  ASSERT_EQ(manager.jobs().size(), 3u);
  const QStringList names{"a", "b", "c"};
  for (int i = 0; i < 3; ++i) {
    const RunJob& j = manager.jobs()[size_t(i)];
    const mmlab::store::RunRow& r = row(names[i]);
    EXPECT_EQ(r.status, RunStatus::kQueued);
    EXPECT_EQ(r.experiment, "three");
    EXPECT_TRUE(r.host.empty());
    EXPECT_EQ(j.name, names[i]);
    EXPECT_EQ(j.run_id, r.id);
    EXPECT_EQ(j.device, "cpu");
    EXPECT_EQ(j.ranks, 2);
    EXPECT_EQ(j.state, RunState::kQueued);
    EXPECT_EQ(j.args, train_args(file, names[i]));
  }
  EXPECT_EQ(messages, QStringList{"Queued 3 run(s) of three."});
}

TEST_F(LauncherTest, LaunchingAgainSkipsFinishedAndRunningRunsResumesStoppedAndStartsQueued) {
  QString err;
  ASSERT_EQ(launcher.launch_experiment(
                experiment("again", {"done", "busy", "halted", "broke", "waiting"}), &err),
            5)
      << err.toStdString();
  mmlab::store::ResultsStore& store = *session.store();
  store.writer(row("done").id).set_status(RunStatus::kFinished);
  mmlab::store::RunStart st;  // training in this very process: alive, so not lost
  st.pid = QCoreApplication::applicationPid();
  st.host = mmlab::store::current_host();
  store.writer(row("busy").id).mark_started(st);
  store.writer(row("halted").id).set_status(RunStatus::kStopped);
  store.writer(row("broke").id).set_status(RunStatus::kFailed, "out of memory");
  ASSERT_TRUE(session.refresh());
  ASSERT_EQ(row("busy").effective_status, RunStatus::kRunning);

  // Another studio (a fresh queue) launches the same experiment again.
  RunManager other(QStringLiteral("mmlab-is-never-started"));
  other.set_paused(true);
  Launcher again(session, other);
  QStringList said;
  QObject::connect(&again, &Launcher::message, [&](const QString& text, int) { said << text; });
  ASSERT_EQ(again.launch_experiment(
                experiment("again", {"done", "busy", "halted", "broke", "waiting"}), &err),
            3)
      << err.toStdString();
  ASSERT_EQ(session.runs().size(), 5u);  // no new rows: the same runs continue
  ASSERT_EQ(other.jobs().size(), 3u);
  EXPECT_EQ(other.jobs()[0].name, "halted");
  EXPECT_EQ(other.jobs()[0].args, resume_args(row("halted").id));
  EXPECT_EQ(other.jobs()[1].name, "broke");
  EXPECT_EQ(other.jobs()[1].args, resume_args(row("broke").id));
  EXPECT_EQ(other.jobs()[2].name, "waiting");
  EXPECT_EQ(other.jobs()[2].run_id, row("waiting").id);
  EXPECT_EQ(other.jobs()[2].args.mid(0, 1), QStringList{"train"});
  EXPECT_EQ(other.jobs()[2].args.mid(2), train_args({}, "waiting").mid(2));
  EXPECT_EQ(QFileInfo(other.jobs()[2].args[1]).dir(), QDir(experiments_dir_for(session.path())));
  EXPECT_TRUE(QFileInfo::exists(other.jobs()[2].args[1]));
  // Each launch has its own file, however soon after the other it came.
  EXPECT_EQ(experiment_files().size(), 2);
  EXPECT_NE(other.jobs()[2].args[1], manager.jobs()[4].args[1]);
  EXPECT_TRUE(QFileInfo::exists(manager.jobs()[4].args[1]));
  ASSERT_EQ(said.size(), 1);
  EXPECT_TRUE(said[0].startsWith("Continuing experiment again in ")) << said[0].toStdString();
  // The stored runs keep their statuses; their trainers change them.
  EXPECT_EQ(row("done").status, RunStatus::kFinished);
  EXPECT_EQ(row("busy").status, RunStatus::kRunning);
  EXPECT_EQ(row("halted").status, RunStatus::kStopped);
  EXPECT_EQ(row("waiting").status, RunStatus::kQueued);

  // Once every run has finished there is nothing to do, and the launch says so.
  for (const auto& r : std::vector<mmlab::store::RunRow>(session.runs()))
    store.writer(r.id).set_status(RunStatus::kFinished);
  ASSERT_TRUE(session.refresh());
  RunManager third(QStringLiteral("mmlab-is-never-started"));
  third.set_paused(true);
  Launcher last(session, third);
  EXPECT_EQ(last.launch_experiment(
                experiment("again", {"done", "busy", "halted", "broke", "waiting"}), &err),
            0);
  EXPECT_TRUE(third.jobs().empty());
  EXPECT_EQ(err.toStdString(),
            "Every run of again in this database has finished or is training already: give the "
            "experiment a new name to train it again.");
}

TEST_F(LauncherTest, ARefusedLaunchLeavesNoFileNoRowsAndNoJobs) {
  QString err;
  // A data source that is not there.
  const json missing =
      experiment("nowhere", {"a", "b"},
                 json{{"source", (dir / "no-such-corpus").string()}, {"tokenizer", "byte"}});
  EXPECT_EQ(launcher.launch_experiment(missing, &err), 0);
  EXPECT_NE(err.indexOf("no-such-corpus"), -1) << err.toStdString();
  EXPECT_TRUE(experiment_files().isEmpty());
  EXPECT_TRUE(session.runs().empty());
  EXPECT_TRUE(manager.jobs().empty());

  // The same name as a stored experiment but another budget: refused as a whole.
  ASSERT_EQ(launcher.launch_experiment(experiment("budget", {"a"}), &err), 1) << err.toStdString();
  json longer = experiment("budget", {"a", "b"});
  longer["defaults"]["train"]["steps"] = 500;
  err.clear();
  EXPECT_EQ(launcher.launch_experiment(longer, &err), 0);
  EXPECT_NE(err.indexOf("steps"), -1) << err.toStdString();
  EXPECT_EQ(experiment_files().size(), 1);  // the first launch's file only
  EXPECT_EQ(session.runs().size(), 1u);
  EXPECT_EQ(manager.jobs().size(), 1u);

  // An experiment that does not parse writes nothing at all.
  err.clear();
  EXPECT_EQ(launcher.launch_experiment(json{{"name", "bad"}, {"runs", 3}}, &err), 0);
  EXPECT_FALSE(err.isEmpty());
  EXPECT_EQ(experiment_files().size(), 1);
  EXPECT_EQ(manager.jobs().size(), 1u);

  // Nor does a launch without a database.
  ResultsSession closed;
  Launcher nowhere(closed, manager);
  EXPECT_EQ(nowhere.launch_experiment(experiment("x", {"a"}), &err), 0);
  EXPECT_EQ(err.toStdString(),
            "No database is open: open or create one first (File ▸ Open database).");
  EXPECT_EQ(manager.jobs().size(), 1u);
}

TEST_F(LauncherTest, ResumeQueuesOnlyRunsThatNeitherFinishedNorTrain) {
  QString err;
  json doc = experiment("resume", {"done", "halted", "broke"});
  doc["runs"][2]["train"] = {{"device", "cuda:1"}};
  ASSERT_EQ(launcher.launch_experiment(doc, &err), 3) << err.toStdString();
  session.store()->writer(row("done").id).set_status(RunStatus::kFinished);
  session.store()->writer(row("halted").id).set_status(RunStatus::kStopped);
  session.store()->writer(row("broke").id).set_status(RunStatus::kFailed, "nan");
  ASSERT_TRUE(session.refresh());

  RunManager other(QStringLiteral("mmlab-is-never-started"));
  other.set_paused(true);
  Launcher here(session, other);
  EXPECT_EQ(here.resume_runs({row("done").id, row("halted").id, row("broke").id, 99999}), 2);
  ASSERT_EQ(other.jobs().size(), 2u);
  EXPECT_EQ(other.jobs()[0].args, resume_args(row("halted").id));
  EXPECT_EQ(other.jobs()[0].device, "cpu");
  EXPECT_EQ(other.jobs()[1].args, resume_args(row("broke").id));
  EXPECT_EQ(other.jobs()[1].device, "cuda:1");  // the device of its stored config
}

TEST_F(LauncherTest, RestoringTheQueueResumesQueuedRowsOnceAndRelaunchesHostRuns) {
  QString err;
  ASSERT_EQ(launcher.launch_experiment(experiment("here", {"a", "b"}), &err), 2)
      << err.toStdString();
  ASSERT_EQ(launcher.launch_experiment(experiment("there", {"far"}), &err, "box"), 1)
      << err.toStdString();
  session.store()->writer(row("a").id).set_status(RunStatus::kStopped);  // not queued: not restored
  ASSERT_TRUE(session.refresh());
  messages.clear();

  // The next studio's queue, on opening the database.
  RunManager next(QStringLiteral("mmlab-is-never-started"));
  next.set_paused(true);
  Launcher restored(session, next);
  QStringList said;
  QObject::connect(&restored, &Launcher::message, [&](const QString& text, int) { said << text; });
  EXPECT_EQ(restored.restore_queue(), 2);
  ASSERT_EQ(next.jobs().size(), 2u);
  EXPECT_EQ(next.jobs()[0].run_id, row("b").id);
  EXPECT_EQ(next.jobs()[0].args, resume_args(row("b").id));
  const mmlab::store::RunRow far = row("far");
  EXPECT_EQ(far.host, "box");
  EXPECT_EQ(next.jobs()[1].run_id, far.id);
  EXPECT_EQ(next.jobs()[1].device, RunManager::host_queue("box"));
  const QStringList& args = next.jobs()[1].args;
  ASSERT_EQ(args.size(), 11);
  EXPECT_EQ(args.mid(0, 5), (QStringList{"remote", "--db", session.path(), "launch", "box"}));
  EXPECT_TRUE(QFileInfo(args[5]).fileName().startsWith("there-")) << args[5].toStdString();
  EXPECT_EQ(args.mid(6),
            (QStringList{"--run", "far", "--uuid", QString::fromStdString(far.uuid), "--follow"}));
  EXPECT_EQ(said, QStringList{"Restored 2 queued run(s) from the database."});

  // Again: every queued row has its job already.
  EXPECT_EQ(restored.restore_queue(), 0);
  EXPECT_EQ(next.jobs().size(), 2u);
  // A host run whose trainer was started there already arrives by sync, not a second start.
  auto book = mmlab::remote::LaunchBook::load(session.path().toStdString());
  mmlab::remote::Launch l;
  l.tag = "far-1";
  l.host = "box";
  l.run_name = "far";
  l.uuid = far.uuid;
  book.launches().push_back(l);
  book.save();
  RunManager third(QStringLiteral("mmlab-is-never-started"));
  third.set_paused(true);
  Launcher once_more(session, third);
  EXPECT_EQ(once_more.restore_queue(), 1);
  ASSERT_EQ(third.jobs().size(), 1u);
  EXPECT_EQ(third.jobs()[0].run_id, row("b").id);
}

TEST_F(LauncherTest, HostRunsLaunchResumeAndWaitOnTheirHost) {
  QString err;
  ASSERT_EQ(launcher.launch_experiment(experiment("remote", {"r1", "r2"}), &err, "box"), 2)
      << err.toStdString();
  EXPECT_EQ(messages, QStringList{"Queued 2 run(s) of remote on box."});
  ASSERT_EQ(manager.jobs().size(), 2u);
  for (const char* name : {"r1", "r2"}) {
    const mmlab::store::RunRow& r = row(name);
    EXPECT_EQ(r.host, "box");
    EXPECT_EQ(r.status, RunStatus::kQueued);
  }
  EXPECT_EQ(
      manager.jobs()[1].args.mid(6),
      (QStringList{"--run", "r2", "--uuid", QString::fromStdString(row("r2").uuid), "--follow"}));
  // Both trained there (the launch book knows them) and stopped.
  auto book = mmlab::remote::LaunchBook::load(session.path().toStdString());
  for (const char* name : {"r1", "r2"}) {
    mmlab::remote::Launch l;
    l.tag = std::string(name) + "-1";
    l.host = "box";
    l.run_name = name;
    l.uuid = row(name).uuid;
    book.launches().push_back(l);
    session.store()->writer(row(name).id).set_status(RunStatus::kStopped);
  }
  book.save();
  ASSERT_TRUE(session.refresh());
  EXPECT_EQ(launcher.remote_host_of(row("r1")), "box");

  // Launched again, even with the local target: each continues on its host.
  RunManager other(QStringLiteral("mmlab-is-never-started"));
  other.set_paused(true);
  Launcher again(session, other);
  ASSERT_EQ(again.launch_experiment(experiment("remote", {"r1", "r2"}), &err), 2)
      << err.toStdString();
  ASSERT_EQ(other.jobs().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const mmlab::store::RunRow& r = row(i == 0 ? "r1" : "r2");
    EXPECT_EQ(other.jobs()[i].device, RunManager::host_queue("box"));
    EXPECT_EQ(other.jobs()[i].run_id, r.id);
    EXPECT_EQ(other.jobs()[i].args, (QStringList{"remote", "--db", session.path(), "resume",
                                                 QString::fromStdString(r.uuid), "--follow"}));
  }

  // While the host is away nothing is queued for it, and Resume says why.
  RunManager away(QStringLiteral("mmlab-is-never-started"));
  away.set_paused(true);
  Launcher waiting(session, away);
  const int64_t r1 = row("r1").id;
  waiting.set_unreachable_check([&](const mmlab::store::RunRow& r) { return r.id == r1; });
  QStringList said;
  QObject::connect(&waiting, &Launcher::message, [&](const QString& text, int) { said << text; });
  EXPECT_EQ(waiting.resume_runs({r1, row("r2").id}), 1);
  ASSERT_EQ(away.jobs().size(), 1u);
  EXPECT_EQ(away.jobs()[0].run_id, row("r2").id);
  EXPECT_EQ(said, QStringList{QStringLiteral("r1 #%1: its host cannot be reached now; resume it "
                                             "once it is back.")
                                  .arg(r1)});
  // A launch skips it silently until its host answers again.
  said.clear();
  EXPECT_EQ(waiting.launch_experiment(experiment("remote", {"r1", "r2"}), &err), 1);
  ASSERT_EQ(away.jobs().size(), 2u);
  EXPECT_EQ(away.jobs()[1].run_id, row("r2").id);
}

TEST_F(LauncherTest, ASlurmClustersJobsStartTogetherAndAnSshHostsOneAtATime) {
  add_host("cluster", mmlab::remote::HostKind::kSlurm);
  add_host("box", mmlab::remote::HostKind::kSsh);
  // The fake trainer stands in for `mmlab remote … --follow`: "slow-…" runs train until stopped.
  manager.set_program(mmlab::test::write_fake_trainer(dir.path()));
  QString err;
  ASSERT_EQ(launcher.launch_experiment(experiment("c", {"slow-c1", "slow-c2"}), &err, "cluster"), 2)
      << err.toStdString();
  ASSERT_EQ(launcher.launch_experiment(experiment("s", {"slow-s1", "slow-s2"}), &err, "box"), 2)
      << err.toStdString();
  manager.set_paused(false);
  ASSERT_TRUE(QTest::qWaitFor([&] { return manager.active_count() == 3; }, 5000))
      << manager.active_count() << " active";
  QTest::qWait(200);  // nothing else starts
  std::vector<RunState> states;
  for (const RunJob& j : manager.jobs()) states.push_back(j.state);
  EXPECT_TRUE(is_active(states[0]));
  EXPECT_TRUE(is_active(states[1]));
  EXPECT_TRUE(is_active(states[2]));
  EXPECT_EQ(states[3], RunState::kQueued);
  EXPECT_EQ(manager.jobs()[0].device, RunManager::host_queue("cluster"));
  EXPECT_EQ(manager.jobs()[2].device, RunManager::host_queue("box"));
}
