// SPDX-License-Identifier: GPL-3.0-or-later
// A daemon run in the foreground for a test (sshd -D, slurmctld -D, …): its log (stdout and
// stderr) is read until it says it is ready, then drained by a thread so that it never blocks on
// a full pipe. SIGTERM when the object dies.
#pragma once

#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/remote/process.h"

namespace mmlab::test {

class ServerProcess {
 public:
  /// Starts argv; ready() when a line containing `ready_line` came before the log ended.
  ServerProcess(const std::vector<std::string>& argv, const std::string& ready_line) {
    std::vector<std::string> merged = {"sh", "-c", "exec \"$0\" \"$@\" 2>&1"};
    merged.insert(merged.end(), argv.begin(), argv.end());
    process_ = std::make_unique<remote::LineProcess>(merged);
    std::string line;
    while (process_->read_line(line)) {
      log_ += line + "\n";
      if (line.find(ready_line) != std::string::npos) {
        ready_ = true;
        drain_ = std::thread([p = process_.get()] {
          std::string l;
          while (p->read_line(l)) {
          }
        });
        return;
      }
    }
    process_->wait();
  }
  ~ServerProcess() {
    // The log pipe ends with the server; its reader is joined before the pipe is closed.
    if (ready_) ::kill(process_->pid(), SIGTERM);
    if (drain_.joinable()) drain_.join();
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ready() const { return ready_; }
  /// What it logged up to ready (or up to its end when it did not get there).
  const std::string& log() const { return log_; }

 private:
  std::unique_ptr<remote::LineProcess> process_;
  std::thread drain_;
  std::string log_;
  bool ready_ = false;
};

}  // namespace mmlab::test
