// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/rank_env.h"

#include <gtest/gtest.h>

#include <map>

#include "core/util/error.h"

namespace mmlab {
namespace {

RankEnv parse(const std::map<std::string, std::string>& vars) {
  return parse_rank_env([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    parse(vars);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(RankEnv, NoLauncherIsOneProcess) {
  const RankEnv r = parse({{"HOME", "/root"}});
  EXPECT_FALSE(r.distributed());
  EXPECT_EQ(r.world_size, 1);
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.launcher, "none");
}

TEST(RankEnv, Torchrun) {
  const RankEnv r = parse({{"RANK", "3"},
                           {"WORLD_SIZE", "4"},
                           {"LOCAL_RANK", "1"},
                           {"MASTER_ADDR", "node7"},
                           {"MASTER_PORT", "29411"}});
  EXPECT_TRUE(r.distributed());
  EXPECT_FALSE(r.is_root());
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.world_size, 4);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.master_addr, "node7");
  EXPECT_EQ(r.master_port, 29411);
  EXPECT_EQ(r.launcher, "torchrun");
  EXPECT_EQ(r.local_world_size, 4);  // LOCAL_WORLD_SIZE missing: all on this host
  EXPECT_EQ(parse({{"RANK", "3"},
                   {"WORLD_SIZE", "4"},
                   {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "node7"},
                   {"MASTER_PORT", "29411"}})
                .local_world_size,
            2);
}

TEST(RankEnv, TorchrunWithOneProcessNeedsNoRendezvous) {
  const RankEnv r = parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_FALSE(r.distributed());
}

TEST(RankEnv, TorchrunWinsOverTheSlurmItRunsInside) {
  const RankEnv r = parse({{"RANK", "1"},
                           {"WORLD_SIZE", "2"},
                           {"MASTER_ADDR", "127.0.0.1"},
                           {"MASTER_PORT", "29500"},
                           {"SLURM_PROCID", "0"},
                           {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(r.launcher, "torchrun");
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.local_rank, 1);  // LOCAL_RANK missing: the rank itself
}

TEST(RankEnv, TorchrunVariablesMissingOrMalformedAreNamed) {
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}).find("MASTER_ADDR"),
      std::string::npos);
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("not RANK"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "x1"}, {"WORLD_SIZE", "2"}}).find("RANK is \"x1\""),
            std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}})
          .find("outside a world of 2"),
      std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
          .find("not a TCP port"),
      std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE is 0"),
            std::string::npos);
}

TEST(RankEnv, SlurmOneNodeRendezvousOnLoopback) {
  const RankEnv r = parse({{"SLURM_PROCID", "1"},
                           {"SLURM_NTASKS", "2"},
                           {"SLURM_LOCALID", "1"},
                           {"SLURM_NNODES", "1"},
                           {"SLURM_JOB_NODELIST", "c1"},
                           {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(r.launcher, "slurm");
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.master_addr, "127.0.0.1");
  EXPECT_EQ(r.master_port, 29500 + 3456);
}

TEST(RankEnv, SlurmStepValuesWinOverTheJobs) {
  // A job of 8 tasks on 2 nodes whose srun step runs 4 tasks on 2 nodes.
  const RankEnv r = parse({{"SLURM_PROCID", "0"},
                           {"SLURM_NTASKS", "8"},
                           {"SLURM_STEP_NUM_TASKS", "4"},
                           {"SLURM_NNODES", "2"},
                           {"SLURM_STEP_NUM_NODES", "2"},
                           {"SLURM_JOB_NODELIST", "gpu[01-04]"},
                           {"SLURM_STEP_NODELIST", "gpu[03-04]"},
                           {"SLURM_LAUNCH_NODE_IPADDR", "10.0.0.9"},
                           {"MASTER_PORT", "31000"}});
  EXPECT_EQ(r.world_size, 4);
  EXPECT_EQ(r.local_world_size, 2);  // 4 tasks on 2 nodes
  EXPECT_EQ(r.master_addr, "gpu03");
  EXPECT_EQ(r.master_port, 31000);
  EXPECT_EQ(r.local_rank, 0);
}

TEST(RankEnv, SlurmMasterAddrAndLaunchNode) {
  std::map<std::string, std::string> v = {{"SLURM_PROCID", "0"},
                                          {"SLURM_NTASKS", "2"},
                                          {"SLURM_NNODES", "2"},
                                          {"SLURM_LAUNCH_NODE_IPADDR", "10.0.0.9"}};
  EXPECT_EQ(parse(v).master_addr, "10.0.0.9");
  v["MASTER_ADDR"] = "head";
  EXPECT_EQ(parse(v).master_addr, "head");
  v.erase("MASTER_ADDR");
  v.erase("SLURM_LAUNCH_NODE_IPADDR");
  EXPECT_NE(error_of(v).find("MASTER_ADDR"), std::string::npos);
}

TEST(RankEnv, SlurmSingleTaskIsOneProcess) {
  const RankEnv r = parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_FALSE(r.distributed());
  EXPECT_EQ(r.launcher, "slurm");
}

TEST(RankEnv, OpenMpi) {
  const RankEnv r = parse({{"OMPI_COMM_WORLD_RANK", "1"},
                           {"OMPI_COMM_WORLD_SIZE", "2"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                           {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(r.launcher, "openmpi");
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.master_addr, "127.0.0.1");
  EXPECT_EQ(r.master_port, 29500);
  EXPECT_EQ(r.local_world_size, 2);
  // Several hosts: rank 0's must be given.
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "1"},
                      {"OMPI_COMM_WORLD_SIZE", "4"},
                      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}})
                .find("MASTER_ADDR"),
            std::string::npos);
}

TEST(RankEnv, FirstHostOfASlurmNodeList) {
  EXPECT_EQ(first_slurm_host("c1"), "c1");
  EXPECT_EQ(first_slurm_host("gpu[03-05,07],cpu1"), "gpu03");
  EXPECT_EQ(first_slurm_host("a1,a2"), "a1");
  EXPECT_EQ(first_slurm_host("n[7,9]"), "n7");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[1-4]"), "rack1-n1");
}

}  // namespace
}  // namespace mmlab
