// SPDX-License-Identifier: GPL-3.0-or-later
// A one-node Slurm cluster for the remote-run tests: munged with a key made for the test,
// slurmctld and slurmd in the foreground on free loopback ports, and a generated slurm.conf for
// this host (select/cons_tres over its CPUs, no cgroups). Accounting: Debian 12's Slurm 22.05
// ships only accounting_storage/slurmdbd (which needs MariaDB) and none; the job completion log
// (jobcomp/filetxt) is the lightest real record sacct reads (`sacct -c`), so the cluster uses it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "core/remote/process.h"
#include "e2e/server_process.h"
#include "e2e/ssh_server.h"

namespace mmlab::test {

class SlurmCluster {
 public:
  explicit SlurmCluster(const std::filesystem::path& dir) : dir_(dir) {
    namespace fs = std::filesystem;
    for (const char* exe : {"/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd",
                            "/usr/bin/sbatch", "/usr/bin/squeue", "/usr/bin/sacct"}) {
      if (::access(exe, X_OK) != 0) {
        skip_ =
            std::string(exe) + " is not installed (Debian slurmctld, slurmd, slurm-client, munge)";
        return;
      }
    }
    if (::geteuid() != 0) {
      skip_ = "slurmd must run as root to start jobs";
      return;
    }
    for (const char* sub : {"munge", "state", "spool"}) fs::create_directories(dir_ / sub);
    {
      std::random_device rd;
      std::ofstream key(dir_ / "munge" / "munge.key", std::ios::binary);
      for (int i = 0; i < 256; ++i) {
        const unsigned v = rd();
        key.write(reinterpret_cast<const char*>(&v), sizeof v);
      }
    }
    fs::permissions(dir_ / "munge" / "munge.key", fs::perms::owner_read);
    const std::string m = (dir_ / "munge").string();
    // munged becomes a daemon only once its socket is ready, so its exit means "ready".
    auto munged =
        remote::run_process({"/usr/sbin/munged", "--key-file=" + m + "/munge.key",
                             "--socket=" + m + "/munge.sock", "--pid-file=" + m + "/munged.pid",
                             "--log-file=" + m + "/munged.log", "--seed-file=" + m + "/seed"});
    if (munged.exit_code != 0) {
      skip_ = "munged did not start: " + munged.err;
      return;
    }
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    std::string host = name;
    host = host.substr(0, host.find('.'));
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    const std::string d = dir_.string();
    {
      std::ofstream c(conf());
      c << "ClusterName=mmlabtest\nSlurmctldHost=" << host << "(127.0.0.1)\n"
        << "SlurmctldPort=" << free_loopback_port() << "\nSlurmdPort=" << free_loopback_port()
        << "\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCredType=cred/munge\n"
        << "AuthInfo=socket=" << m << "/munge.sock\n"
        << "StateSaveLocation=" << d << "/state\nSlurmdSpoolDir=" << d << "/spool\n"
        << "SlurmctldPidFile=" << d << "/slurmctld.pid\nSlurmdPidFile=" << d << "/slurmd.pid\n"
        << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSwitchType=switch/none\n"
        << "MpiDefault=none\nReturnToService=2\nSchedulerType=sched/builtin\n"
        << "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
        << "JobCompType=jobcomp/filetxt\nJobCompLoc=" << d << "/jobcomp.txt\n"
        << "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
        << "NodeName=" << host << " NodeAddr=127.0.0.1 CPUs=" << cpus
        << " RealMemory=500 State=UNKNOWN\n"
        << "PartitionName=debug Nodes=" << host << " Default=YES MaxTime=INFINITE State=UP\n";
    }
    ::setenv("SLURM_CONF", conf().c_str(), 1);  // the daemons read it too
    ctld_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"/usr/sbin/slurmctld", "-D", "-c", "-f", conf()},
        "Running as primary controller");
    if (!ctld_->ready()) {
      skip_ = "slurmctld did not start: " + ctld_->log();
      return;
    }
    slurmd_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"/usr/sbin/slurmd", "-D", "-f", conf(), "-N", host},
        "slurmd started on");
    if (!slurmd_->ready()) skip_ = "slurmd did not start: " + slurmd_->log();
  }

  ~SlurmCluster() {
    if (ctld_ && ctld_->ready()) remote::run_process({"scancel", "--full", "--partition=debug"});
    slurmd_.reset();
    ctld_.reset();
    std::ifstream pid(dir_ / "munge" / "munged.pid");
    long p = 0;
    std::string comm;
    // Only if that pid still is our munged (a pid is reused once its process has gone).
    if (pid >> p && p > 0 && std::ifstream("/proc/" + std::to_string(p) + "/comm") >> comm &&
        comm == "munged") {
      ::kill(static_cast<pid_t>(p), SIGTERM);
    }
  }

  const std::string& skip_reason() const { return skip_; }
  std::string conf() const { return (dir_ / "slurm.conf").string(); }

 private:
  std::filesystem::path dir_;
  std::string skip_;
  std::unique_ptr<ServerProcess> ctld_, slurmd_;
};

}  // namespace mmlab::test
