// SPDX-License-Identifier: GPL-3.0-or-later
// Which rank of a data-parallel run this process is, read from the environment that the
// launchers set (no LibTorch here: the parser is plain string work with its own tests).
//
// The contract, in order of precedence (the first launcher whose variables are present wins):
//   torchrun / `mmlab launch`: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (and
//                  LOCAL_WORLD_SIZE, the ranks on this host; default the world size).
//   Slurm's srun:  SLURM_PROCID (rank), SLURM_STEP_NUM_TASKS or else SLURM_NTASKS (world size),
//                  SLURM_LOCALID (local rank). The rendezvous address is MASTER_ADDR when set,
//                  else 127.0.0.1 when the step runs on one node (SLURM_STEP_NUM_NODES or
//                  SLURM_NNODES is 1), else the first host of SLURM_STEP_NODELIST or
//                  SLURM_JOB_NODELIST (where srun's block distribution puts rank 0), else
//                  SLURM_LAUNCH_NODE_IPADDR. The port is MASTER_PORT when set, else
//                  29500 + SLURM_JOB_ID % 10000, so two jobs sharing a node do not collide.
//   OpenMPI's mpirun: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK;
//                  MASTER_ADDR (default 127.0.0.1 when every rank is on this node, i.e.
//                  OMPI_COMM_WORLD_LOCAL_SIZE equals the size) and MASTER_PORT (default 29500).
// None of them, or a world size of 1: a single process (no process group at all).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace mmlab {

struct RankEnv {
  int rank = 0;              ///< 0 .. world_size - 1; rank 0 writes the results and checkpoints
  int world_size = 1;        ///< processes in the run
  int local_rank = 0;        ///< index among this host's ranks: the GPU a CUDA run uses
  int local_world_size = 1;  ///< ranks on this host (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE,
                             ///< or the world over Slurm's nodes): they share its CPU cores
  std::string master_addr;   ///< host of rank 0, where the rendezvous store listens
  int master_port = 0;
  std::string launcher = "none";  ///< torchrun | slurm | openmpi | none (for messages)

  bool distributed() const { return world_size > 1; }
  bool is_root() const { return rank == 0; }
};

/// Looks a variable up; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// Reads the rank environment through `env`. Inconsistent or malformed variables (a rank outside
/// the world, a port that is not a number, torchrun's variables with one missing) are a
/// UserError naming the variable.
RankEnv parse_rank_env(const EnvLookup& env);

/// parse_rank_env() over this process's environment.
RankEnv rank_env_from_process();

/// The first host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace mmlab
