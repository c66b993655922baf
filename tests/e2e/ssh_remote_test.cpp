// SPDX-License-Identifier: GPL-3.0-or-later
// Runs on an SSH host, against a real sshd on a loopback port (ssh_server.h): the host checks'
// sentences, a remote trainer that survives its SSH connection being killed and is re-attached
// at the byte where the stream broke, stop + resume, and the synced local database equal to the
// remote one with every point exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/remote/ssh_runs.h"
#include "core/store/store.h"
#include "core/util/error.h"
#include "e2e/remote_test_support.h"
#include "e2e/ssh_server.h"
#include "process_support.h"
#include "test_support.h"

namespace mmlab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::remote_support::all_points;
using test::remote_support::difference;

class SshRemote : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test::SshServer>(
        dir_ / "ssh",
        std::map<std::string, std::string>{{"XDG_DATA_HOME", (dir_ / "remote-xdg").string()}});
    if (!server_->skip_reason().empty()) {
      GTEST_SKIP() << "SSH tests skipped: " << server_->skip_reason() << ".";
    }
    test::write_synthetic_corpus(dir_ / "corpus");
    host_ = server_->host("box");
    host_.mmlab = test::mmlab_binary();
    host_.dir = (dir_ / "remote").string();
  }

  void TearDown() override {
    // A failed test must not leave a trainer behind (they are children of init, not of us).
    for (const auto& [pid, tag] : trainers_) test::remote_support::kill_trainer(pid, tag);
  }

  fs::path write_experiment(int64_t steps) {
    return test::remote_support::write_experiment(dir_.path(), dir_ / "corpus", steps);
  }

  remote::Launch start(const remote::LaunchRequest& req) {
    remote::Launch l = remote::start_on_host(host_, req);
    trainers_.emplace_back(l.pid, l.tag);
    return l;
  }

  void expect_local_equals_remote(const std::string& uuid) {
    const auto local = all_points(dir_ / "local.sqlite", uuid);
    const auto remote = all_points(dir_ / "remote" / "results.sqlite", uuid);
    ASSERT_FALSE(remote.empty());
    EXPECT_EQ(local.size(), remote.size());
    EXPECT_EQ(difference(remote, local), "") << "remote points missing or different locally";
    EXPECT_EQ(difference(local, remote), "") << "local points the remote database lacks";
  }

  test::TempDir dir_;
  std::unique_ptr<test::SshServer> server_;
  remote::Host host_;
  std::vector<std::pair<int64_t, std::string>> trainers_;  // pid, launch tag
  test::remote_support::Stream s_;
};

TEST_F(SshRemote, CheckNamesTheHostAndTheProblem) {
  EXPECT_TRUE(remote::check_host(host_).ok) << remote::check_host(host_).problem;

  remote::Host away = host_;
  away.name = "away";
  away.port = test::free_loopback_port();
  auto c = remote::check_host(away);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("The host away (ssh://"), std::string::npos) << c.problem;
  EXPECT_NE(c.problem.find("cannot be reached over ssh"), std::string::npos) << c.problem;
  EXPECT_NE(c.problem.find("Connection refused"), std::string::npos) << c.problem;

  remote::Host bare = host_;
  bare.name = "bare";
  bare.mmlab = (dir_ / "no" / "mmlab").string();
  c = remote::check_host(bare);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("The host bare (ssh://"), std::string::npos) << c.problem;
  EXPECT_NE(c.problem.find("has no `" + bare.mmlab + "`"), std::string::npos) << c.problem;

  // An mmlab of another schema version: what an old build there answers.
  const fs::path old = dir_ / "old-mmlab";
  std::ofstream(old) << "#!/bin/sh\necho '{\"version\":\"0.0.9\",\"schema\":1}'\n";
  ::chmod(old.c_str(), 0755);
  remote::Host dated = host_;
  dated.name = "dated";
  dated.mmlab = old.string();
  c = remote::check_host(dated);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.problem.find("has mmlab 0.0.9 with results schema 1, this one has schema " +
                           std::to_string(store::ResultsStore::schema_version())),
            std::string::npos)
      << c.problem;
  for (const auto* h : {&away, &bare, &dated}) {
    const auto p = remote::check_host(*h).problem;
    EXPECT_EQ(p.find('\n'), std::string::npos) << "one sentence: " << p;
  }
}

TEST_F(SshRemote, TrainerSurvivesItsConnectionAndIsReattached) {
  // A budget the test never waits for: the run ends by stop, so nothing depends on speed.
  remote::LaunchRequest req;
  req.experiment_file = write_experiment(100000);
  req.run_name = "mamba";
  remote::Launch launch = start(req);
  store::ResultsStore local(dir_ / "local.sqlite");

  int64_t cut_at = 0;
  {
    remote::LineProcess follower(remote::follow_argv(host_, launch, 0));
    ASSERT_TRUE(s_.read_until(follower, [](const json& j) { return j["event"] == "step"; }));
    cut_at = s_.last_step;
    ::kill(follower.pid(), SIGKILL);  // the SSH connection dies mid-run
    EXPECT_EQ(follower.wait(), -SIGKILL);
  }
  EXPECT_EQ(::kill(static_cast<pid_t>(launch.pid), 0), 0) << "the trainer died with its ssh";

  // A sync while it runs, then re-attach where the stream broke and watch it go on.
  ASSERT_TRUE(remote::sync_from_host(host_, launch, local).has_value());
  ASSERT_FALSE(launch.uuid.empty());
  {
    remote::LineProcess follower(remote::follow_argv(host_, launch, s_.offset));
    ASSERT_TRUE(s_.read_until(follower, [&](const json& j) {
      return j["event"] == "step" && j["step"].get<int64_t>() >= cut_at + 5;
    }));
    EXPECT_TRUE(remote::stop_on_host(host_, launch));
    s_.read_until(follower, [](const json&) { return false; });  // to the end of the stream
    EXPECT_EQ(follower.wait(), 0);
  }
  // Re-attached at the right byte: the two pieces are the log, nothing lost or repeated.
  EXPECT_EQ(s_.text, test::slurp(dir_ / "remote" / "launches" / (launch.tag + ".jsonl")));
  // One trainer the whole time: it started once and ended stopped.
  EXPECT_EQ(std::count(s_.statuses.begin(), s_.statuses.end(), "running"), 1);
  ASSERT_FALSE(s_.statuses.empty());
  EXPECT_EQ(s_.statuses.back(), "stopped");
  EXPECT_FALSE(remote::stop_on_host(host_, launch)) << "a stopped trainer is not running";

  const auto synced = remote::sync_from_host(host_, launch, local);
  ASSERT_TRUE(synced.has_value());
  EXPECT_EQ(synced->last_step, s_.last_step);
  expect_local_equals_remote(launch.uuid);
  EXPECT_EQ(local.reader().get_run(synced->run_id).status, store::RunStatus::kStopped);
  // The live curve is the database's curve.
  std::map<int64_t, double> stored;
  for (const auto& p : local.reader().points(synced->run_id, "loss")) stored[p.step] = p.value;
  EXPECT_EQ(s_.loss, stored);

  // Resume on the host: the curve continues with no gap, and the full re-sync of a resumed run
  // leaves exactly the remote points.
  const int64_t stopped_at = s_.last_step;
  remote::LaunchRequest again;
  again.resume_uuid = launch.uuid;
  remote::Launch resumed = start(again);
  s_ = {};
  {
    remote::LineProcess follower(remote::follow_argv(host_, resumed, 0));
    ASSERT_TRUE(s_.read_until(follower, [&](const json& j) {
      return j["event"] == "step" && j["step"].get<int64_t>() >= stopped_at + 3;
    }));
    EXPECT_TRUE(remote::stop_on_host(host_, resumed));
    s_.read_until(follower, [](const json&) { return false; });
    EXPECT_EQ(follower.wait(), 0);
  }
  const auto after = remote::sync_from_host(host_, resumed, local);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->uuid, launch.uuid);
  EXPECT_EQ(after->run_id, synced->run_id);
  expect_local_equals_remote(launch.uuid);
  const auto loss = local.reader().points(after->run_id, "loss");
  ASSERT_EQ(static_cast<int64_t>(loss.size()), s_.last_step);
  for (size_t i = 0; i < loss.size(); ++i) EXPECT_EQ(loss[i].step, static_cast<int64_t>(i) + 1);
  EXPECT_EQ(local.reader().list_runs().size(), 1u);
}

TEST_F(SshRemote, CliLaunchFollowsToTheEndAndSyncsEveryPointOnce) {
  const fs::path hosts = dir_ / "hosts.json";
  remote::HostList list = remote::HostList::load(hosts);
  list.add(host_);
  list.save();
  const std::string db = (dir_ / "local.sqlite").string();
  auto r = test::run_mmlab({"remote", "--hosts", hosts.string(), "--db", db, "launch", "box",
                            write_experiment(30).string(), "--follow"},
                           {}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> statuses;
  int steps = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line);
    if (j["event"] == "status") statuses.push_back(j["status"]);
    if (j["event"] == "step") ++steps;
  }
  EXPECT_EQ(steps, 30);
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(statuses.back(), "finished");

  store::OpenOptions ro;
  ro.mode = store::Database::Mode::kReadOnly;
  std::string uuid;
  {
    store::ResultsStore st(db, ro);
    const auto runs = st.reader().list_runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].status, store::RunStatus::kFinished);
    EXPECT_EQ(runs[0].step, 30);
    uuid = runs[0].uuid;
  }
  const auto local = all_points(db, uuid);
  const auto remote = all_points(dir_ / "remote" / "results.sqlite", uuid);
  EXPECT_FALSE(remote.empty());
  EXPECT_EQ(local.size(), remote.size());
  EXPECT_EQ(difference(remote, local), "");

  // A second sync brings nothing new and duplicates nothing.
  r = test::run_mmlab({"remote", "--hosts", hosts.string(), "--db", db, "sync"}, {}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(all_points(db, uuid).size(), remote.size());
  EXPECT_EQ(difference(remote, all_points(db, uuid)), "");

  r = test::run_mmlab({"remote", "--hosts", hosts.string(), "--db", db, "list"}, {}, dir_.path());
  EXPECT_NE(r.out.find("box  finished  run 1 (mamba, step 30/30)"), std::string::npos) << r.out;

  // The host goes away. A plain sync has nothing to fetch (the run was seen ending) and so needs
  // no host; syncing that start by name says why it cannot, in one sentence.
  server_.reset();
  r = test::run_mmlab({"remote", "--hosts", hosts.string(), "--db", db, "sync"}, {}, dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string tag = remote::LaunchBook::load(db).launches().at(0).tag;
  r = test::run_mmlab({"remote", "--hosts", hosts.string(), "--db", db, "sync", tag}, {},
                      dir_.path());
  EXPECT_EQ(r.exit_code, kExitHostUnreachable);
  EXPECT_EQ(r.err.rfind("mmlab: The host box (ssh://", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(SshRemote, UnreachableHostIsShownAsSuchAndCatchesUpWhenBack) {
  remote::LaunchRequest req;
  req.experiment_file = write_experiment(100000);
  req.run_name = "mamba";
  remote::Launch launch = start(req);
  const fs::path db = dir_ / "local.sqlite";
  store::ResultsStore local(db);
  {
    remote::LineProcess follower(remote::follow_argv(host_, launch, 0));
    ASSERT_TRUE(s_.read_until(follower, [](const json& j) { return j["event"] == "step"; }));
  }
  ASSERT_TRUE(remote::sync_from_host(host_, launch, local).has_value());
  const int64_t seen = remote::last_synced_step(local, launch.uuid);

  server_.reset();  // the host goes away; its trainer does not
  EXPECT_FALSE(remote::sync_from_host(host_, launch, local).has_value());
  EXPECT_FALSE(launch.reachable);
  EXPECT_NE(launch.message.find("The host box (ssh://"), std::string::npos) << launch.message;
  remote::LaunchBook book = remote::LaunchBook::load(db);
  book.launches().push_back(launch);
  book.save();
  auto r = test::run_mmlab({"remote", "--db", db.string(), "list"}, {}, dir_.path());
  EXPECT_NE(r.out.find(launch.tag + "  box  unreachable  run 1 (mamba"), std::string::npos)
      << r.out;
  EXPECT_EQ(::kill(static_cast<pid_t>(launch.pid), 0), 0);

  // It comes back (here: a new server, on another port): the sync catches up.
  server_ = std::make_unique<test::SshServer>(
      dir_ / "ssh-again",
      std::map<std::string, std::string>{{"XDG_DATA_HOME", (dir_ / "remote-xdg").string()}});
  ASSERT_EQ(server_->skip_reason(), "");
  const remote::Host before = host_;
  host_ = server_->host("box");
  host_.mmlab = before.mmlab;
  host_.dir = before.dir;
  EXPECT_TRUE(remote::stop_on_host(host_, launch));
  {
    // To the end of the stream, i.e. until the trainer has exited.
    remote::LineProcess follower(remote::follow_argv(host_, launch, 0));
    s_.read_until(follower, [](const json&) { return false; });
    EXPECT_EQ(follower.wait(), 0);
  }
  const auto caught_up = remote::sync_from_host(host_, launch, local);
  ASSERT_TRUE(caught_up.has_value());
  EXPECT_TRUE(launch.reachable);
  EXPECT_EQ(launch.message, "");
  EXPECT_GT(caught_up->last_step, seen);
  EXPECT_EQ(local.reader().get_run(caught_up->run_id).status, store::RunStatus::kStopped);
  expect_local_equals_remote(launch.uuid);
}

}  // namespace
}  // namespace mmlab
