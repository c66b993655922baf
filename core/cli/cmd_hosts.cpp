// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab hosts list|add|remove|check`: the execution targets (core/remote/host.h).
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/cli/cli.h"
#include "core/remote/host.h"
#include "core/remote/ssh_runs.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

using nlohmann::json;
using remote::Host;
using remote::HostKind;
using remote::HostList;

struct HostsArgs {
  std::string file;  ///< --hosts; empty = default_hosts_path()
  std::string format = "table";
  Host host;  ///< add
  std::string target;
  std::vector<std::string> names;  ///< remove, check
  std::filesystem::path path() const {
    return file.empty() ? remote::default_hosts_path() : std::filesystem::path(file);
  }
};

const char* kind_name(HostKind k) {
  return k == HostKind::kLocal ? "local" : k == HostKind::kSsh ? "ssh" : "slurm";
}

int list_hosts(const HostsArgs& a) {
  HostList list = HostList::load(a.path());
  if (a.format == "json") {
    json out = json::array();
    for (const auto& h : list.hosts()) {
      json j = remote::to_json(h);
      j["kind"] = kind_name(h.kind);
      out.push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& h : list.hosts()) {
    std::cout << h.name << "  " << h.target();
    if (h.kind != HostKind::kLocal) std::cout << "  mmlab=" << h.mmlab << "  dir=" << h.dir;
    if (h.kind == HostKind::kSlurm) {
      std::cout << "  partition=" << h.partition << "  account=" << h.account << "  gpus=" << h.gpus
                << "  tasks=" << h.tasks << "  time=" << h.time_limit;
    }
    std::cout << "\n";
  }
  return kExitOk;
}

int add_host(HostsArgs& a) {
  HostList list = HostList::load(a.path());
  Host h = a.host;
  remote::parse_target(a.target, h);
  list.add(h);
  list.save();
  std::cout << "added " << h.name << " (" << h.target() << ") to " << list.path().string() << "\n";
  return kExitOk;
}

int remove_hosts(const HostsArgs& a) {
  HostList list = HostList::load(a.path());
  for (const auto& n : a.names) list.get(n);  // every name checked before anything changes
  for (const auto& n : a.names) list.remove(n);
  list.save();
  return kExitOk;
}

int check_hosts(const HostsArgs& a) {
  HostList list = HostList::load(a.path());
  std::vector<const Host*> hosts;
  if (a.names.empty()) {
    for (const auto& h : list.hosts()) hosts.push_back(&h);
  } else {
    for (const auto& n : a.names) hosts.push_back(&list.get(n));
  }
  int rc = kExitOk;
  for (const Host* h : hosts) {
    const remote::HostCheck c = remote::check_host(*h);
    if (c.ok) {
      std::cout << h->name << ": ok"
                << (c.version.empty()
                        ? ""
                        : " (mmlab " + c.version + ", schema " + std::to_string(c.schema) + ")")
                << "\n";
    } else {
      std::cerr << "mmlab: " << c.problem << "\n";
      rc = kExitBadInput;
    }
  }
  return rc;
}

}  // namespace

void add_hosts_command(CLI::App& app, Context& ctx) {
  (void)ctx;
  auto args = std::make_shared<HostsArgs>();
  CLI::App* hosts = app.add_subcommand("hosts", "Execution targets: local, SSH hosts, Slurm");
  hosts->require_subcommand(1);
  hosts->fallthrough();
  hosts->add_option("--hosts", args->file,
                    "Hosts file (default: $XDG_CONFIG_HOME/mmlab/hosts.json)");

  CLI::App* list = hosts->add_subcommand("list", "List the hosts");
  list->add_option("--format", args->format, "table | json")
      ->check(CLI::IsMember({"table", "json"}));
  list->callback([args, &ctx] { ctx.action = [args] { return list_hosts(*args); }; });

  CLI::App* add = hosts->add_subcommand("add", "Add an SSH host or a Slurm cluster");
  add->add_option("name", args->host.name, "What to call it")->required();
  add->add_option("target", args->target, "ssh://user@host[:port] or slurm://user@login-host")
      ->required();
  add->add_option("--dir", args->host.dir,
                  "Folder on the host for its results database, checkpoints and logs")
      ->required();
  add->add_option("--mmlab", args->host.mmlab, "The mmlab program on the host (default: mmlab)");
  add->add_option("--ssh-config", args->host.ssh_config, "ssh -F FILE (default: ~/.ssh/config)");
  add->add_option("--ssh-option", args->host.ssh_options, "An ssh -o Key=Value (repeatable)");
  add->add_option("--partition", args->host.partition, "Slurm partition");
  add->add_option("--account", args->host.account, "Slurm account");
  add->add_option("--gpus", args->host.gpus, "Slurm: GPUs per run (one rank per GPU)")
      ->check(CLI::NonNegativeNumber);
  add->add_option("--tasks", args->host.tasks,
                  "Slurm: CPU ranks per run when --gpus is 0 (data parallel over Gloo)")
      ->check(CLI::NonNegativeNumber);
  add->add_option("--time-limit", args->host.time_limit, "Slurm: time limit per run (HH:MM:SS)");
  add->add_option("--sbatch", args->host.sbatch_lines,
                  "Slurm: an extra #SBATCH line, e.g. \"--mem=32G\" (repeatable)");
  add->callback([args, &ctx] { ctx.action = [args] { return add_host(*args); }; });

  CLI::App* rm = hosts->add_subcommand("remove", "Remove hosts");
  rm->add_option("name", args->names, "Host names")->required();
  rm->callback([args, &ctx] { ctx.action = [args] { return remove_hosts(*args); }; });

  CLI::App* check = hosts->add_subcommand(
      "check", "Check that hosts are reachable and have mmlab of this schema version");
  check->add_option("name", args->names, "Host names (default: all)");
  check->callback([args, &ctx] { ctx.action = [args] { return check_hosts(*args); }; });
}

}  // namespace mmlab::cli
