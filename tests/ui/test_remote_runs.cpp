// SPDX-License-Identifier: GPL-3.0-or-later
// The studio's remote target against a real sshd (tests/e2e/ssh_server.h) and the real trainer:
// a run launched on the host from the main window streams its curve live under the local run's
// id, that curve is the remote database's, Stop makes the remote trainer checkpoint and stop, and
// the local database ends up with exactly the remote points; Run ▸ Resume continues it there.
#include <gtest/gtest.h>
#include <signal.h>

#include <QAction>
#include <QFileInfo>
#include <QLabel>
#include <QTableView>
#include <QTest>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "core/remote/host.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "e2e/remote_test_support.h"
#include "e2e/ssh_server.h"
#include "process_support.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/main_window.h"
#include "ui/run_manager.h"

using namespace mmlab::ui;
using mmlab::EventKind;
using mmlab::ProgressEvent;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

QString qpath(const fs::path& p) {
  return QString::fromStdString(p.string());
}

// Kills every trainer started under `remote` (a failed test must not leave one behind).
struct KillRemoteTrainers {
  fs::path remote;
  ~KillRemoteTrainers() {
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(remote / "launches", ec)) {
      if (f.path().extension() != ".pid") continue;
      long pid = 0;
      if (std::ifstream(f.path()) >> pid && pid > 0)
        mmlab::test::remote_support::kill_trainer(pid, f.path().stem().string());
    }
  }
};

// Every run's `loss` as the studio's run manager streamed it to the plot: run id → step → loss.
struct LiveCurves {
  std::map<int64_t, std::map<int64_t, double>> loss;
  void watch(MainWindow& w) {
    QObject::connect(&w.manager(), &RunManager::eventsReceived, &w,
                     [this](int, const std::vector<ProgressEvent>& events) {
                       for (const auto& e : events) {
                         if (e.kind != EventKind::kStep) continue;
                         for (const auto& [name, value] : e.metrics)
                           if (name == "loss") loss[e.run_id][e.step] = value;
                       }
                     });
  }
};

std::map<int64_t, double> loss_of(const std::vector<mmlab::test::remote_support::Point>& points) {
  std::map<int64_t, double> out;
  for (const auto& [metric, step, tokens, wall, value] : points)
    if (metric == "loss") out[step] = value;
  return out;
}

// The quick comparison (experiments/quick-compare.json, the studio's default document) made
// short enough for a test: its four families, models and budget shape, a few steps of small
// batches over a synthetic corpus.
json short_quick_comparison(const fs::path& corpus, int64_t steps) {
  json doc = mmlab::ui::ExperimentDialog::default_document();
  auto& train = doc["defaults"]["train"];
  train["steps"] = steps;
  train["batch_size"] = 4;
  train["seq_len"] = 32;
  train["eval_every"] = steps / 2;
  train["eval_batches"] = 2;
  train["threads"] = 1;
  doc["defaults"]["data"] = {{"source", corpus.string()}, {"tokenizer", "byte"}};
  return doc;
}

// A real sshd and a hosts file naming it `box` (this build's mmlab, a folder of the test).
struct SshBox {
  explicit SshBox(const mmlab::test::TempDir& dir)
      : server(dir / "ssh", {{"XDG_DATA_HOME", (dir / "remote-xdg").string()}}),
        config("XDG_CONFIG_HOME", qpath(dir / "config")),
        bin("MMLAB_BIN", QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")),
        cleanup{dir / "remote"} {
    if (!server.skip_reason().empty()) return;
    host = server.host("box");
    host.mmlab = MMLAB_BINARY_DIR "/app/mmlab";
    host.dir = (dir / "remote").string();
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    hosts.add(host);
    hosts.save();
  }
  /// Points the hosts file's `box` at `port` (a host that moved, or came back).
  void set_port(int port) {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    hosts.remove("box");
    host.port = port;
    hosts.add(host);
    hosts.save();
  }
  mmlab::test::SshServer server;
  mmlab::test::ScopedEnv config, bin;
  KillRemoteTrainers cleanup;
  mmlab::remote::Host host;
};

}  // namespace

// The SSH proof: the quick comparison launched on an SSH host from the studio. Every
// run's live curve is the remote database's curve of that run, and the local database ends with
// each of its points exactly once.
TEST(RemoteRunsInTheStudio, QuickComparisonOnAnSshHostDrawsTheRemoteRowsAndSyncsThemOnce) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  if (!QFileInfo(QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")).isExecutable())
    GTEST_SKIP() << "build the mmlab target first.";
  SshBox box(dir);
  if (!box.server.skip_reason().empty())
    GTEST_SKIP() << "SSH tests skipped: " << box.server.skip_reason() << ".";
  mmlab::test::write_synthetic_corpus(dir / "corpus");
  constexpr int64_t kSteps = 10;
  const json doc = short_quick_comparison(dir / "corpus", kSteps);

  MainWindow w(qpath(dir / "local.sqlite"));
  w.set_quiet(true);
  LiveCurves live;
  live.watch(w);
  QString err;
  ASSERT_EQ(w.launch_experiment(doc, &err, QStringLiteral("box")), 4) << err.toStdString();
  ASSERT_EQ(w.manager().jobs().size(), 4u);
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        for (const RunJob& j : w.manager().jobs())
          if (!is_done(j.state)) return false;
        return true;
      },
      300000));
  for (const RunJob& j : w.manager().jobs()) {
    EXPECT_EQ(j.device, "host:box");
    EXPECT_EQ(j.state, RunState::kFinished)
        << j.name.toStdString() << ": " << j.message.toStdString() << j.stderr_tail.toStdString();
  }

  mmlab::store::OpenOptions ro;
  ro.mode = mmlab::store::Database::Mode::kReadOnly;
  mmlab::store::ResultsStore local(dir / "local.sqlite", ro);
  const auto runs = local.reader().list_runs();
  ASSERT_EQ(runs.size(), 4u);
  std::set<std::string> names;
  for (const auto& run : runs) {
    names.insert(run.name);
    EXPECT_EQ(run.experiment, "quick-compare");
    EXPECT_EQ(run.status, mmlab::store::RunStatus::kFinished) << run.name;
    const auto remote =
        mmlab::test::remote_support::all_points(dir / "remote" / "results.sqlite", run.uuid);
    const auto remote_loss = loss_of(remote);
    ASSERT_EQ(remote_loss.size(), size_t(kSteps)) << run.name;
    // The live curve (streamed under the run's id here) is the remote database's.
    EXPECT_EQ(live.loss[run.id], remote_loss) << run.name;
    // Each remote point exactly once here (the primary key forbids a second copy; none lacks).
    const auto synced = mmlab::test::remote_support::all_points(dir / "local.sqlite", run.uuid);
    EXPECT_EQ(synced.size(), remote.size()) << run.name;
    EXPECT_EQ(mmlab::test::remote_support::difference(remote, synced), "") << run.name;
    EXPECT_EQ(local.reader().points(run.id, "val_loss").size(), 2u) << run.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"moe-mamba", "mamba", "transformer-moe", "transformer"}));
  EXPECT_EQ(live.loss.size(), 4u) << "no stream under a run id of the host's database";
}

// The host is down when the queue gets to the run: nothing is started, the job waits in the
// queue saying why (not failed), its row (written queued at the launch) is shown unreachable
// with that sentence, never lost, and the run starts by itself on that row once the host is back.
TEST(RemoteRunsInTheStudio, AJobWhoseHostIsDownWaitsInTheQueueAndStartsWhenItIsBack) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  if (!QFileInfo(QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab")).isExecutable())
    GTEST_SKIP() << "build the mmlab target first.";
  SshBox box(dir);
  if (!box.server.skip_reason().empty())
    GTEST_SKIP() << "SSH tests skipped: " << box.server.skip_reason() << ".";
  const int live_port = box.host.port;
  box.set_port(mmlab::test::free_loopback_port());  // nothing listens there: "down"
  mmlab::test::write_synthetic_corpus(dir / "corpus");
  std::ifstream in(mmlab::test::remote_support::write_experiment(dir.path(), dir / "corpus", 8));
  const json doc = json::parse(in);

  MainWindow w(qpath(dir / "local.sqlite"));
  w.set_quiet(true);
  w.manager().set_host_retry_delay(100);
  QString err;
  ASSERT_EQ(w.launch_experiment(doc, &err, QStringLiteral("box")), 1) << err.toStdString();
  const int key = w.manager().jobs()[0].key;
  // Between two tries (the job is back in the queue, its host's queue held).
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        const RunJob& j = *w.manager().job(key);
        return j.host_waits >= 2 && j.state == RunState::kQueued;
      },
      60000))
      << w.manager().job(key)->message.toStdString();
  mmlab::store::OpenOptions ro;
  ro.mode = mmlab::store::Database::Mode::kReadOnly;
  const auto queued = mmlab::store::ResultsStore(dir / "local.sqlite", ro).reader().list_runs();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].status, mmlab::store::RunStatus::kQueued);
  EXPECT_EQ(queued[0].host, "box");
  const QString why = w.manager().job(key)->message;
  EXPECT_TRUE(why.contains(QStringLiteral("The host box (ssh://")) &&
              why.contains(QStringLiteral("cannot be reached over ssh")) &&
              why.contains(QStringLiteral("Trying again in")))
      << why.toStdString();
  EXPECT_EQ(w.manager().job(key)->run_id, queued[0].id);
  ASSERT_EQ(w.proxy().rowCount(), 1);
  EXPECT_EQ(w.proxy().index(0, RunTableModel::kStatus).data().toString(), "unreachable");
  EXPECT_EQ(w.proxy().index(0, RunTableModel::kStatus).data(Qt::ToolTipRole).toString(), why);
  EXPECT_TRUE(mmlab::remote::LaunchBook::load(dir / "local.sqlite").launches().empty())
      << "nothing was started";

  box.set_port(live_port);  // the host is back
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(key)->state); }, 120000));
  const RunJob& j = *w.manager().job(key);
  EXPECT_EQ(j.state, RunState::kFinished) << j.message.toStdString() << j.stderr_tail.toStdString();
  const auto runs = mmlab::store::ResultsStore(dir / "local.sqlite", ro).reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id, queued[0].id) << "the host's trainer took the queued row";
  EXPECT_EQ(runs[0].status, mmlab::store::RunStatus::kFinished);
  EXPECT_EQ(runs[0].step, 8);
  EXPECT_EQ(j.run_id, runs[0].id);
  w.session().refresh();
  EXPECT_EQ(w.proxy().index(0, RunTableModel::kStatus).data().toString(), "finished");
}

TEST(RemoteRunsInTheStudio, LiveCurveIsTheRemoteRowsStopStopsTheTrainerResumeContinuesOnTheHost) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const QString mmlab = QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab");
  if (!QFileInfo(mmlab).isExecutable()) GTEST_SKIP() << "build the mmlab target first.";
  mmlab::test::SshServer server(dir / "ssh", {{"XDG_DATA_HOME", (dir / "remote-xdg").string()}});
  if (!server.skip_reason().empty()) {
    GTEST_SKIP() << "SSH tests skipped: " << server.skip_reason() << ".";
  }
  KillRemoteTrainers cleanup{dir / "remote"};
  mmlab::test::ScopedEnv config("XDG_CONFIG_HOME", qpath(dir / "config"));
  mmlab::test::ScopedEnv bin("MMLAB_BIN", mmlab);
  {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    mmlab::remote::Host h = server.host("box");
    h.mmlab = mmlab.toStdString();
    h.dir = (dir / "remote").string();
    hosts.add(h);
    hosts.save();
  }
  mmlab::test::write_synthetic_corpus(dir / "corpus");
  const fs::path exp_file = mmlab::test::remote_support::write_experiment(
      dir.path(), dir / "corpus", 100000);  // ends by Stop, not by its budget
  std::ifstream in(exp_file);
  const json doc = json::parse(in);

  const QString db = qpath(dir / "local.sqlite");
  MainWindow w(db);
  w.set_quiet(true);
  std::map<int64_t, double> live;  // step -> loss, as the plot got it
  std::set<int64_t> run_ids;
  QObject::connect(&w.manager(), &RunManager::eventsReceived, &w,
                   [&](int, const std::vector<ProgressEvent>& events) {
                     for (const auto& e : events) {
                       if (e.kind != EventKind::kStep) continue;
                       run_ids.insert(e.run_id);
                       for (const auto& [name, value] : e.metrics)
                         if (name == "loss") live[e.step] = value;
                     }
                   });
  QString err;
  ASSERT_EQ(w.launch_experiment(doc, &err, QStringLiteral("box")), 1) << err.toStdString();
  ASSERT_EQ(w.manager().jobs().size(), 1u);
  const int key = w.manager().jobs()[0].key;
  // The launch wrote the run's row here first, queued for the host; the synced rows land on it.
  std::string queued_uuid;
  int64_t queued_id = 0;
  {
    mmlab::store::ResultsStore st(dir / "local.sqlite");
    const auto rows = st.reader().list_runs();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].host, "box");
    queued_uuid = rows[0].uuid;
    queued_id = rows[0].id;
  }
  EXPECT_EQ(w.manager().jobs()[0].run_id, queued_id);
  EXPECT_EQ(w.manager().jobs()[0].device, "host:box");
  ASSERT_TRUE(QTest::qWaitFor([&] { return w.manager().job(key)->step >= 3; }, 120000))
      << w.manager().job(key)->stderr_tail.toStdString();
  EXPECT_EQ(w.manager().job(key)->state, RunState::kRunning);
  ASSERT_TRUE(w.manager().stop(key));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(key)->state); }, 120000));
  const RunJob& job = *w.manager().job(key);
  EXPECT_EQ(job.state, RunState::kStopped) << job.stderr_tail.toStdString();

  mmlab::store::OpenOptions ro;
  ro.mode = mmlab::store::Database::Mode::kReadOnly;
  mmlab::store::ResultsStore local(dir / "local.sqlite", ro);
  const auto runs = local.reader().list_runs();
  ASSERT_EQ(runs.size(), 1u);  // the queued row became the run: no second row
  EXPECT_EQ(runs[0].id, queued_id);
  EXPECT_EQ(runs[0].uuid, queued_uuid);
  EXPECT_EQ(runs[0].status, mmlab::store::RunStatus::kStopped);
  // The stream named the run by its id here, not by its id on the host.
  EXPECT_EQ(job.run_id, runs[0].id);
  EXPECT_EQ(run_ids, std::set<int64_t>{runs[0].id});
  // The live curve is the remote database's curve, and the local one holds exactly its points.
  const auto remote =
      mmlab::test::remote_support::all_points(dir / "remote" / "results.sqlite", runs[0].uuid);
  std::map<int64_t, double> remote_loss;
  for (const auto& [metric, step, tokens, wall, value] : remote)
    if (metric == "loss") remote_loss[step] = value;
  EXPECT_EQ(live, remote_loss);
  const auto synced = mmlab::test::remote_support::all_points(dir / "local.sqlite", runs[0].uuid);
  EXPECT_EQ(synced.size(), remote.size());
  EXPECT_EQ(mmlab::test::remote_support::difference(remote, synced), "");
  const int64_t stopped_at = remote_loss.rbegin()->first;

  // Run ▸ Resume on that run resumes it on its host, with no gap in its curve.
  w.session().refresh();
  auto* table = w.findChild<QTableView*>(QStringLiteral("runTable"));
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(table->model()->rowCount(), 1);
  table->selectRow(0);
  QAction* resume = nullptr;
  for (QAction* a : w.findChildren<QAction*>())
    if (a->text() == QLatin1String("&Resume")) resume = a;
  ASSERT_NE(resume, nullptr);
  resume->trigger();
  ASSERT_EQ(w.manager().jobs().size(), 2u);
  const int again = w.manager().jobs()[1].key;
  EXPECT_EQ(w.manager().jobs()[1].device, "host:box");
  ASSERT_TRUE(
      QTest::qWaitFor([&] { return w.manager().job(again)->step >= stopped_at + 2; }, 120000))
      << w.manager().job(again)->stderr_tail.toStdString();
  ASSERT_TRUE(w.manager().stop(again));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(again)->state); }, 120000));
  EXPECT_EQ(w.manager().job(again)->state, RunState::kStopped);
  EXPECT_EQ(w.manager().job(again)->run_id, runs[0].id);
  const auto resumed = local.reader().points(runs[0].id, "loss");
  ASSERT_GT(static_cast<int64_t>(resumed.size()), stopped_at);
  for (size_t i = 0; i < resumed.size(); ++i)
    EXPECT_EQ(resumed[i].step, static_cast<int64_t>(i) + 1);
  EXPECT_EQ(mmlab::test::remote_support::all_points(dir / "local.sqlite", runs[0].uuid).size(),
            mmlab::test::remote_support::all_points(dir / "remote" / "results.sqlite", runs[0].uuid)
                .size());

  // Launching the experiment again here continues it, and its stopped run continues on its host.
  ASSERT_EQ(w.launch_experiment(doc, &err, QStringLiteral("local")), 1) << err.toStdString();
  ASSERT_EQ(w.manager().jobs().size(), 3u);
  const RunJob& continued = w.manager().jobs()[2];
  EXPECT_EQ(continued.device, "host:box");
  EXPECT_EQ(continued.run_id, runs[0].id);
  EXPECT_TRUE(continued.args.contains(QStringLiteral("resume")))
      << continued.args.join(' ').toStdString();
  const int third = continued.key;
  ASSERT_TRUE(w.manager().stop(third));
  ASSERT_TRUE(QTest::qWaitFor([&] { return is_done(w.manager().job(third)->state); }, 120000));
  EXPECT_EQ(w.manager().job(third)->state, RunState::kStopped)
      << w.manager().job(third)->stderr_tail.toStdString();
}

TEST(RemoteRunsInTheStudio, ARunOnAnUnreachableHostShowsAsSuchNotLost) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const fs::path db = dir / "local.sqlite";
  std::string uuid;
  {
    mmlab::store::ResultsStore st(db);
    mmlab::store::NewRun run;
    run.experiment_id = st.ensure_experiment("remote-e2e");
    run.name = "mamba";
    run.status = mmlab::store::RunStatus::kRunning;
    const int64_t id = st.create_run(run);
    mmlab::store::RunStart start;
    start.host = "gpu1-far-away";  // another host: only its stale heartbeat can be seen
    start.pid = 4242;
    st.writer(id).mark_started(start);
    st.database().exec("UPDATE runs SET heartbeat_at = heartbeat_at - 3600");
    uuid = st.reader().get_run(id).uuid;
  }
  auto book = mmlab::remote::LaunchBook::load(db);
  mmlab::remote::Launch l;
  l.tag = "t1";
  l.host = "gpu1";
  l.uuid = uuid;
  l.reachable = false;
  l.message = "The host gpu1 (ssh://me@gpu1) cannot be reached over ssh (timeout).";
  book.launches().push_back(l);
  book.save();

  MainWindow w(qpath(db));
  w.set_quiet(true);
  auto status = [&] {
    return w.proxy().index(0, RunTableModel::kStatus).data().toString().toStdString();
  };
  ASSERT_EQ(w.proxy().rowCount(), 1);
  EXPECT_EQ(status(), "unreachable");
  EXPECT_EQ(w.proxy().index(0, RunTableModel::kStatus).data(Qt::ToolTipRole).toString(),
            QString::fromStdString(l.message));
  auto status_bar_runs = [&] {
    for (QLabel* label : w.findChildren<QLabel*>())
      if (label->text().contains(QStringLiteral(" runs · "))) return label->text().toStdString();
    return std::string("(no label)");
  };
  EXPECT_EQ(status_bar_runs(), "1 runs · 0 running · 0 lost · 1 unreachable · 0 queued here");

  // Reached again (a later contact got through): what its rows say, here lost.
  book.launches()[0].reachable = true;
  book.save();
  w.session().refresh();
  EXPECT_EQ(status(), "lost");
  EXPECT_EQ(status_bar_runs(), "1 runs · 0 running · 1 lost · 0 queued here");
}

// A launch on a host writes the runs' rows here, queued for that host, before anything starts:
// closing the studio before the host took them keeps them, and the next studio on the database
// queues them on the host again (with the rows' uuids); one already started there is not
// started twice. The host here refuses connections, so the restored launches wait in the host's
// queue: their rows stay queued (not failed, not lost), shown unreachable with the sentence.
TEST(RemoteRunsInTheStudio, QueuedRemoteRunsAreRowsThatSurviveAClosedStudio) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const QString mmlab = QStringLiteral(MMLAB_BINARY_DIR "/app/mmlab");
  if (!QFileInfo(mmlab).isExecutable()) GTEST_SKIP() << "build the mmlab target first.";
  mmlab::test::ScopedEnv config("XDG_CONFIG_HOME", qpath(dir / "config"));
  mmlab::test::ScopedEnv data("XDG_DATA_HOME", qpath(dir / "data"));
  mmlab::test::ScopedEnv bin("MMLAB_BIN", mmlab);
  {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    mmlab::remote::Host h;
    h.name = "box";
    mmlab::remote::parse_target("ssh://nobody@127.0.0.1:1", h);  // nothing listens on port 1
    h.dir = (dir / "remote").string();
    h.ssh_options = {"ConnectTimeout=5", "StrictHostKeyChecking=no"};
    hosts.add(h);
    hosts.save();
  }
  // The data folder is the host's: it need not exist here.
  const fs::path exp_file = mmlab::test::remote_support::write_experiment(
      dir.path(), dir / "corpus-on-the-host", 50, {"mamba", "moe-mamba", "late"});
  std::ifstream in(exp_file);
  const json doc = json::parse(in);
  const QString db = qpath(dir / "local.sqlite");
  std::map<std::string, std::string> uuid_of;
  {
    MainWindow w(db);
    w.set_quiet(true);
    w.manager().set_paused(true);  // closed before the host's queue started any of them
    QString err;
    ASSERT_EQ(w.launch_experiment(doc, &err, QStringLiteral("box")), 3) << err.toStdString();
    EXPECT_EQ(w.close_question().isEmpty(), false);  // queued runs are counted
    const auto rows = w.session().runs();
    ASSERT_EQ(rows.size(), 3u);
    for (const auto& r : rows) {
      EXPECT_EQ(r.status, mmlab::store::RunStatus::kQueued) << r.name;
      EXPECT_EQ(r.host, "box") << r.name;
      uuid_of[r.name] = r.uuid;
    }
    w.close();
  }
  // "late" was started on the host before the studio closed: the launch book has its uuid.
  {
    auto book = mmlab::remote::LaunchBook::load(db.toStdString());
    mmlab::remote::Launch l;
    l.tag = "started-before";
    l.host = "box";
    l.run_name = "late";
    l.uuid = uuid_of["late"];
    book.launches().push_back(l);
    book.save();
  }
  MainWindow w(db);
  w.set_quiet(true);
  ASSERT_EQ(w.manager().jobs().size(), 2u);  // mamba and moe-mamba, not late
  std::set<std::string> restored;
  for (const RunJob& j : w.manager().jobs()) {
    EXPECT_EQ(j.device, "host:box");
    const QStringList& a = j.args;
    ASSERT_TRUE(a.contains("launch") && a.contains("--uuid") && a.contains("--run"))
        << a.join(' ').toStdString();
    const std::string name = a.at(a.indexOf("--run") + 1).toStdString();
    restored.insert(name);
    EXPECT_EQ(a.at(a.indexOf("--uuid") + 1).toStdString(), uuid_of[name]);
    EXPECT_NE(w.session().run(j.run_id), nullptr);  // the job is the queued row's
  }
  EXPECT_EQ(restored, (std::set<std::string>{"mamba", "moe-mamba"}));
  // The first try found the host away: its queue waits (5 s, then longer), nothing failed.
  ASSERT_TRUE(QTest::qWaitFor(
      [&] {
        return std::any_of(w.manager().jobs().begin(), w.manager().jobs().end(),
                           [](const RunJob& j) { return j.host_waits >= 1; }) &&
               std::all_of(w.manager().jobs().begin(), w.manager().jobs().end(),
                           [](const RunJob& j) { return j.state == RunState::kQueued; });
      },
      60000));
  w.session().refresh();
  for (const RunJob& j : w.manager().jobs()) {
    const mmlab::store::RunRow* r = w.session().run(j.run_id);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->status, mmlab::store::RunStatus::kQueued) << r->name;
  }
  std::map<std::string, std::string> shown;  // run name → status column
  for (int row = 0; row < w.proxy().rowCount(); ++row) {
    const QModelIndex status = w.proxy().index(row, RunTableModel::kStatus);
    const std::string name =
        w.proxy().index(row, RunTableModel::kName).data().toString().toStdString();
    shown[name] = status.data().toString().toStdString();
    if (name == "late") continue;
    EXPECT_TRUE(status.data(Qt::ToolTipRole).toString().contains(QStringLiteral("The host box")))
        << name << ": " << status.data(Qt::ToolTipRole).toString().toStdString();
  }
  EXPECT_EQ(shown,
            (std::map<std::string, std::string>{
                {"mamba", "unreachable"}, {"moe-mamba", "unreachable"}, {"late", "queued"}}));
  int still_queued = 0;
  for (const auto& r : w.session().runs())
    still_queued += r.status == mmlab::store::RunStatus::kQueued;
  EXPECT_EQ(still_queued, 3);  // late: its trainer is the host's; the others wait for the host

  // Taken off the queue while it waits (its tries started nothing): its row ends stopped, so
  // the next studio does not queue it again.
  const RunJob tried = *std::find_if(w.manager().jobs().begin(), w.manager().jobs().end(),
                                     [](const RunJob& j) { return j.host_waits >= 1; });
  ASSERT_TRUE(w.manager().stop(tried.key));
  const mmlab::store::RunRow* r = w.session().run(tried.run_id);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->status, mmlab::store::RunStatus::kStopped) << r->name;
  EXPECT_EQ(r->error_text, "Taken off the queue before it started.");
}
