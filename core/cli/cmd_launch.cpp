// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab launch --nproc N -- train FILE ...`: N local ranks of a data-parallel command, for users
// without torchrun. Each rank is `mmlab <command>` with torchrun's variables (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT); SIGINT and SIGTERM are passed
// on to every rank; when a rank fails, the others are stopped and the launch exits non-zero,
// naming the rank.
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>

#include "core/cli/cli.h"
#include "core/util/console.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace {

// Seconds the other ranks get to stop on their own (rank 0 marks the run failed and keeps its
// checkpoints) after one failed, before they are killed.
constexpr unsigned kStopGraceSeconds = 30;

struct LaunchArgs {
  int nproc = 1;
  int master_port = 0;  ///< 0: a free port of this host
  std::vector<std::string> command;
};

std::atomic<int> g_forward_signal{0};
std::atomic<bool> g_grace_over{false};

extern "C" void on_launch_signal(int sig) {
  g_forward_signal.store(sig);
}
extern "C" void on_grace_alarm(int) {
  g_grace_over.store(true);
}

// A port nothing listens on now (the kernel's choice for port 0); rank 0 binds it a moment later.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 29500;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

void install(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);  // no SA_RESTART: waitpid() returns to pass the signal on
}

std::string describe_end(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended";
}

int launch(const LaunchArgs& a) {
  if (a.command.empty()) {
    throw UserError("No command to launch.",
                    "Give it after --: mmlab launch --nproc 2 -- train FILE.", kExitUsage);
  }
  if (a.command.front() == "launch") {
    throw UserError("mmlab launch cannot launch itself.", "Give the command to run on each rank.",
                    kExitUsage);
  }
  const int port = a.master_port > 0 ? a.master_port : free_port();
  install(SIGINT, on_launch_signal);
  install(SIGTERM, on_launch_signal);
  std::map<pid_t, int> alive;  // pid -> rank
  for (int rank = 0; rank < a.nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (const auto& [p, r] : alive) ::kill(p, SIGKILL);
      throw ResourceError(
          "Cannot start rank " + std::to_string(rank) + ": " + std::strerror(errno) + ".",
          "Free some memory or processes and launch again.");
    }
    if (pid == 0) {
      // A launcher that is killed outright (SIGKILL) takes its ranks along, as a stop.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      const std::map<std::string, std::string> env = {
          {"RANK", std::to_string(rank)},       {"WORLD_SIZE", std::to_string(a.nproc)},
          {"LOCAL_RANK", std::to_string(rank)}, {"LOCAL_WORLD_SIZE", std::to_string(a.nproc)},
          {"MASTER_ADDR", "127.0.0.1"},         {"MASTER_PORT", std::to_string(port)}};
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<std::string> args = {"mmlab"};
      args.insert(args.end(), a.command.begin(), a.command.end());
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    alive[pid] = rank;
  }
  int code = kExitOk;
  bool stopping = false;
  while (!alive.empty()) {
    if (const int sig = g_forward_signal.exchange(0)) {
      for (const auto& [pid, rank] : alive) ::kill(pid, sig);
    }
    if (g_grace_over.exchange(false)) {
      for (const auto& [pid, rank] : alive) ::kill(pid, SIGKILL);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto it = alive.find(pid);
    if (it == alive.end()) continue;
    const int rank = it->second;
    alive.erase(it);
    const bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (!failed || stopping) continue;
    write_stderr_line("mmlab launch: rank " + std::to_string(rank) + " of " +
                      std::to_string(a.nproc) + " " + describe_end(status) +
                      "; stopping the other ranks.");
    code = WIFEXITED(status) ? WEXITSTATUS(status) : kExitFailure;
    stopping = true;
    for (const auto& [p, r] : alive) ::kill(p, SIGTERM);
    install(SIGALRM, on_grace_alarm);
    ::alarm(kStopGraceSeconds);
  }
  return code;
}

}  // namespace

void add_launch_command(CLI::App& app, Context& ctx) {
  (void)ctx;
  auto args = std::make_shared<LaunchArgs>();
  CLI::App* sub = app.add_subcommand(
      "launch",
      "Start N local ranks of a data-parallel command: mmlab launch --nproc N -- train FILE");
  sub->add_option("--nproc", args->nproc, "Ranks to start on this host (one per GPU)")
      ->required()
      ->check(CLI::Range(1, 1024));
  sub->add_option("--master-port", args->master_port,
                  "Port of the rank-0 rendezvous on 127.0.0.1 (default: a free one)")
      ->check(CLI::Range(1, 65535));
  sub->add_option("command", args->command, "The mmlab command each rank runs, after --")
      ->required();
  sub->callback([args, &ctx] { ctx.action = [args] { return launch(*args); }; });
}

}  // namespace mmlab::cli
