// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/rank_env.h"

#include <cstdlib>

#include "core/util/error.h"

namespace mmlab {

namespace {

// A whole non-negative decimal number, or nullopt.
std::optional<long long> whole_number(const std::string& text) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != text.npos) {
    return std::nullopt;
  }
  return std::stoll(text);
}

class Reader {
 public:
  Reader(const EnvLookup& env, std::string launcher) : env_(env), launcher_(std::move(launcher)) {}

  std::optional<std::string> get(const std::string& name) const {
    auto v = env_(name);
    if (v && v->empty()) return std::nullopt;
    return v;
  }

  int number(const std::string& name) const {
    const auto v = get(name);
    if (!v) {
      throw UserError(launcher_ + " set some of its variables but not " + name + ".",
                      "Start mmlab through " + launcher_ + " itself, or set " + name + ".");
    }
    return number_of(name, *v);
  }

  int number_or(const std::string& name, int fallback) const {
    const auto v = get(name);
    return v ? number_of(name, *v) : fallback;
  }

  std::string text(const std::string& name) const {
    const auto v = get(name);
    if (!v) {
      throw UserError(launcher_ + " set some of its variables but not " + name + ".",
                      "Start mmlab through " + launcher_ + " itself, or set " + name + ".");
    }
    return *v;
  }

 private:
  int number_of(const std::string& name, const std::string& value) const {
    const auto n = whole_number(value);
    if (!n || *n > 1'000'000'000) {
      throw UserError(
          "The environment variable " + name + " is \"" + value + "\", not a whole number.",
          "Set it to a number or unset it.");
    }
    return static_cast<int>(*n);
  }

  const EnvLookup& env_;
  std::string launcher_;
};

void check(RankEnv& r, const std::string& rank_var, const std::string& world_var,
           const std::string& port_var) {
  if (r.world_size < 1) {
    throw UserError("The environment variable " + world_var + " is 0; a run needs one process.",
                    "Set it to the number of processes.");
  }
  if (r.rank >= r.world_size) {
    throw UserError("The environment variable " + rank_var + " is " + std::to_string(r.rank) +
                        ", outside a world of " + std::to_string(r.world_size) + " processes.",
                    "Give each process a rank from 0 to " + std::to_string(r.world_size - 1) + ".");
  }
  if (r.distributed() && (r.master_port < 1 || r.master_port > 65535)) {
    throw UserError("The rendezvous port " + std::to_string(r.master_port) + " (" + port_var +
                        ") is not a TCP port.",
                    "Set MASTER_PORT to a free port between 1024 and 65535.");
  }
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // Hosts are separated by commas outside brackets; a bracket holds ranges of numbers.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == ',' && depth == 0) break;
    if (c == '[') ++depth;
    if (c == ']') --depth;
    first += c;
  }
  // Each bracket stands for its first number (leading zeros kept).
  std::string host;
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i] != '[') {
      host += first[i];
      continue;
    }
    const size_t close = first.find(']', i);
    const std::string inside =
        first.substr(i + 1, close == std::string::npos ? close : close - i - 1);
    host += inside.substr(0, inside.find_first_of(",-"));
    if (close == std::string::npos) break;
    i = close;
  }
  return host;
}

RankEnv parse_rank_env(const EnvLookup& env) {
  RankEnv r;
  if (Reader any(env, ""); any.get("WORLD_SIZE") || any.get("RANK")) {
    Reader t(env, "torchrun");
    r.launcher = "torchrun";
    r.rank = t.number("RANK");
    r.world_size = t.number("WORLD_SIZE");
    r.local_rank = t.number_or("LOCAL_RANK", r.rank);
    r.local_world_size = t.number_or("LOCAL_WORLD_SIZE", r.world_size);
    if (r.world_size > 1) {
      r.master_addr = t.text("MASTER_ADDR");
      r.master_port = t.number("MASTER_PORT");
    }
    check(r, "RANK", "WORLD_SIZE", "MASTER_PORT");
    return r;
  }
  if (Reader s(env, "srun");
      s.get("SLURM_PROCID") && (s.get("SLURM_STEP_NUM_TASKS") || s.get("SLURM_NTASKS"))) {
    r.launcher = "slurm";
    r.rank = s.number("SLURM_PROCID");
    r.world_size =
        s.get("SLURM_STEP_NUM_TASKS") ? s.number("SLURM_STEP_NUM_TASKS") : s.number("SLURM_NTASKS");
    r.local_rank = s.number_or("SLURM_LOCALID", 0);
    const int nodes = s.get("SLURM_STEP_NUM_NODES") ? s.number("SLURM_STEP_NUM_NODES")
                                                    : s.number_or("SLURM_NNODES", 0);
    r.local_world_size = nodes > 1 ? (r.world_size + nodes - 1) / nodes : r.world_size;
    if (r.world_size > 1) {
      const auto nodelist =
          s.get("SLURM_STEP_NODELIST") ? s.get("SLURM_STEP_NODELIST") : s.get("SLURM_JOB_NODELIST");
      if (auto a = s.get("MASTER_ADDR")) {
        r.master_addr = *a;
      } else if (nodes == 1) {
        r.master_addr = "127.0.0.1";
      } else if (nodelist) {
        r.master_addr = first_slurm_host(*nodelist);
      } else if (auto ip = s.get("SLURM_LAUNCH_NODE_IPADDR")) {
        r.master_addr = *ip;
      } else {
        throw UserError("srun gave no node list to find rank 0's host in.",
                        "Set MASTER_ADDR to the host of rank 0.");
      }
      r.master_port = s.get("MASTER_PORT") ? s.number("MASTER_PORT")
                                           : 29500 + s.number_or("SLURM_JOB_ID", 0) % 10000;
    }
    check(r, "SLURM_PROCID", "SLURM_NTASKS", "MASTER_PORT");
    return r;
  }
  if (Reader m(env, "mpirun"); m.get("OMPI_COMM_WORLD_RANK") || m.get("OMPI_COMM_WORLD_SIZE")) {
    r.launcher = "openmpi";
    r.rank = m.number("OMPI_COMM_WORLD_RANK");
    r.world_size = m.number("OMPI_COMM_WORLD_SIZE");
    r.local_rank = m.number_or("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    r.local_world_size = m.number_or("OMPI_COMM_WORLD_LOCAL_SIZE", r.world_size);
    if (r.world_size > 1) {
      if (auto a = m.get("MASTER_ADDR")) {
        r.master_addr = *a;
      } else if (m.number_or("OMPI_COMM_WORLD_LOCAL_SIZE", 0) == r.world_size) {
        r.master_addr = "127.0.0.1";
      } else {
        throw UserError("mpirun started ranks on several hosts but MASTER_ADDR is not set.",
                        "Pass the host of rank 0 with mpirun -x MASTER_ADDR=HOST.");
      }
      r.master_port = m.number_or("MASTER_PORT", 29500);
    }
    check(r, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "MASTER_PORT");
    return r;
  }
  return r;
}

RankEnv rank_env_from_process() {
  return parse_rank_env([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace mmlab
