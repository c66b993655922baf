// SPDX-License-Identifier: GPL-3.0-or-later
// Execution targets ("hosts"): where a run trains. `local` is always there; the others live in a
// small JSON file (default $XDG_CONFIG_HOME/mmlab/hosts.json) that `mmlab hosts` and the studio's
// host settings both edit. Torch-free and Qt-free, so the studio and the CLI share it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmlab::remote {

enum class HostKind { kLocal, kSsh, kSlurm };

/// One execution target. The SSH fields apply to kSsh and kSlurm (a Slurm cluster is reached
/// through its login host); the Slurm fields only to kSlurm.
struct Host {
  std::string name;  ///< what the user calls it (`gpu1`); `local` is reserved
  HostKind kind = HostKind::kLocal;
  std::string user;             ///< empty: ssh decides (~/.ssh/config, the local user name)
  std::string address;          ///< host name or IP of the SSH server / login host
  int port = 0;                 ///< 0: ssh's default
  std::string mmlab = "mmlab";  ///< the mmlab command on the remote side
  std::string dir;              ///< remote folder for the database, checkpoints and logs
  std::string ssh_config;       ///< ssh -F FILE; empty: the user's ~/.ssh/config
  std::vector<std::string> ssh_options;  ///< extra `-o Key=Value` options for ssh
  // Slurm
  std::string partition;
  std::string account;
  int gpus = 0;            ///< GPUs per run (one rank per GPU under srun)
  int tasks = 0;           ///< ranks per run when gpus is 0 (CPU data parallel over Gloo); 0: one
  std::string time_limit;  ///< sbatch --time, e.g. `02:00:00`
  std::vector<std::string> sbatch_lines;  ///< extra `#SBATCH` lines, written as given

  /// `local`, `ssh://user@host:port` or `slurm://user@login-host`.
  std::string target() const;
  /// `user@host` (or `host`), what ssh takes as its destination.
  std::string destination() const;
  /// How many ranks (srun tasks) one run of this host has: its GPUs, else its tasks, at least 1.
  int ranks_per_run() const;
};

/// Parses a target URL into `host` (kind, user, address, port). A malformed one is a UserError
/// naming it and showing the accepted forms.
void parse_target(const std::string& url, Host& host);

/// The host as the hosts file stores it (and `mmlab hosts list --format json` prints it).
nlohmann::json to_json(const Host& host);

/// The default location of the hosts file: $XDG_CONFIG_HOME/mmlab/hosts.json
/// (~/.config/mmlab/hosts.json).
std::filesystem::path default_hosts_path();

/// The hosts file: `local` first, then the configured hosts in the order they were added.
class HostList {
 public:
  /// Reads `path`; a missing file is an empty list, a damaged one a UserError naming it.
  static HostList load(const std::filesystem::path& path);
  /// Writes atomically (never half-written).
  void save() const;

  const std::vector<Host>& hosts() const { return hosts_; }
  /// The host called `name` (`local` included), or a UserError listing the names there are.
  const Host& get(const std::string& name) const;
  /// Adds a host; a taken name, `local`, or missing required fields are a UserError.
  void add(Host host);
  /// Removes a host; an unknown one (or `local`) is a UserError.
  void remove(const std::string& name);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<Host> hosts_;  ///< hosts_[0] is `local`
};

}  // namespace mmlab::remote
