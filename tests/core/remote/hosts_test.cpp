// SPDX-License-Identifier: GPL-3.0-or-later
// Host targets, the hosts file, shell quoting and the child-process helper.
#include <gtest/gtest.h>

#include <fstream>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/remote/ssh.h"
#include "core/util/error.h"
#include "test_support.h"

namespace mmlab::remote {
namespace {

TEST(HostTarget, ParsesTheThreeFormsAndRefusesOthers) {
  Host h;
  parse_target("ssh://me@gpu-1.lab:2222", h);
  EXPECT_EQ(h.kind, HostKind::kSsh);
  EXPECT_EQ(h.user, "me");
  EXPECT_EQ(h.address, "gpu-1.lab");
  EXPECT_EQ(h.port, 2222);
  EXPECT_EQ(h.target(), "ssh://me@gpu-1.lab:2222");
  EXPECT_EQ(h.destination(), "me@gpu-1.lab");

  Host s;
  parse_target("slurm://login.hpc", s);
  EXPECT_EQ(s.kind, HostKind::kSlurm);
  EXPECT_EQ(s.user, "");
  EXPECT_EQ(s.port, 0);
  EXPECT_EQ(s.target(), "slurm://login.hpc");

  Host l;
  parse_target("local", l);
  EXPECT_EQ(l.kind, HostKind::kLocal);

  for (const char* bad :
       {"ftp://x", "ssh://", "ssh://a@b:c", "ssh://a b", "gpu1", "ssh://x:99999"}) {
    Host b;
    try {
      parse_target(bad, b);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(HostList, RoundTripsThroughItsFileWithLocalAlwaysFirst) {
  test::TempDir dir;
  const auto file = dir / "cfg" / "hosts.json";
  HostList list = HostList::load(file);  // missing: just local
  ASSERT_EQ(list.hosts().size(), 1u);
  EXPECT_EQ(list.hosts()[0].name, "local");

  Host a;
  a.name = "gpu1";
  parse_target("ssh://me@gpu1", a);
  a.dir = "~/runs";
  a.mmlab = "/opt/mmlab/bin/mmlab";
  a.ssh_options = {"ProxyJump=bastion"};
  list.add(a);
  Host s;
  s.name = "hpc";
  parse_target("slurm://me@login:2200", s);
  s.dir = "/scratch/me";
  s.partition = "gpu";
  s.account = "proj";
  s.gpus = 4;
  s.tasks = 2;
  s.time_limit = "02:00:00";
  s.sbatch_lines = {"--mem=32G", "--constraint=h100"};
  list.add(s);
  list.save();

  const HostList back = HostList::load(file);
  ASSERT_EQ(back.hosts().size(), 3u);
  EXPECT_EQ(back.hosts()[1].name, "gpu1");
  EXPECT_EQ(back.get("gpu1").mmlab, "/opt/mmlab/bin/mmlab");
  EXPECT_EQ(back.get("gpu1").ssh_options, std::vector<std::string>{"ProxyJump=bastion"});
  const Host& h = back.get("hpc");
  EXPECT_EQ(h.kind, HostKind::kSlurm);
  EXPECT_EQ(h.port, 2200);
  EXPECT_EQ(h.partition, "gpu");
  EXPECT_EQ(h.account, "proj");
  EXPECT_EQ(h.gpus, 4);
  EXPECT_EQ(h.tasks, 2);
  EXPECT_EQ(h.ranks_per_run(), 4) << "GPUs decide the ranks when there are GPUs";
  EXPECT_EQ(h.time_limit, "02:00:00");
  EXPECT_EQ(h.sbatch_lines, (std::vector<std::string>{"--mem=32G", "--constraint=h100"}));

  try {
    back.get("nope");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("The hosts are: local, gpu1, hpc"), std::string::npos);
  }
  HostList again = HostList::load(file);
  Host dup = a;
  EXPECT_THROW(again.add(dup), UserError);
  Host no_dir;
  no_dir.name = "x";
  parse_target("ssh://x", no_dir);
  EXPECT_THROW(again.add(no_dir), UserError);
  EXPECT_THROW(again.remove("local"), UserError);
  again.remove("gpu1");
  again.save();
  EXPECT_EQ(HostList::load(file).hosts().size(), 2u);

  std::ofstream(file) << "{ not json";
  try {
    HostList::load(file);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + " is not valid JSON"), std::string::npos);
  }
}

TEST(ShellQuote, AnyTextSurvivesTheShellAsOneWord) {
  for (const std::string text :
       {"plain", "two words", "it's", "'", "$HOME `id` \"x\" \\ ; |", "", "a\nb"}) {
    const ProcessOutput out = run_process({"sh", "-c", "printf %s " + shell_quote(text)});
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.out, text);
  }
}

TEST(RunProcess, FeedsInputAndCollectsBothStreamsWithoutDeadlock) {
  // More than a pipe buffer each way, with the child writing before it has read everything.
  std::string big(1 << 20, 'x');
  ProcessOutput out = run_process({"sh", "-c", "cat; echo done >&2; exit 7"}, big);
  EXPECT_EQ(out.exit_code, 7);
  EXPECT_EQ(out.out.size(), big.size());
  EXPECT_EQ(out.err, "done\n");
  EXPECT_EQ(run_process({"/no/such/program"}).exit_code, 127);
}

TEST(LineProcess, GivesCompleteLinesAndTheExitCode) {
  LineProcess p({"sh", "-c", "printf 'a\\nbb\\ncc'; echo oops >&2; exit 3"});
  std::string line;
  ASSERT_TRUE(p.read_line(line));
  EXPECT_EQ(line, "a");
  ASSERT_TRUE(p.read_line(line));
  EXPECT_EQ(line, "bb");
  EXPECT_FALSE(p.read_line(line));  // "cc" has no newline yet: not a line
  EXPECT_EQ(p.wait(), 3);
  EXPECT_EQ(p.err(), "oops\n");
}

}  // namespace
}  // namespace mmlab::remote
