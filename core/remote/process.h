// SPDX-License-Identifier: GPL-3.0-or-later
// Child processes for the remote engines (ssh, and through it sbatch/squeue/…): run one to the end
// capturing its output, or read a long-running one's stdout line by line.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace mmlab::remote {

struct ProcessOutput {
  int exit_code = -1;  ///< -signal when it was killed; 127 when the program could not start
  std::string out, err;
};

/// Runs argv[0] (looked up in PATH) with `input` on its stdin, to the end.
ProcessOutput run_process(const std::vector<std::string>& argv, const std::string& input = "");

/// A child whose stdout is read line by line (stderr is collected for the error message).
class LineProcess {
 public:
  explicit LineProcess(const std::vector<std::string>& argv);
  ~LineProcess();  ///< kills (SIGTERM) and reaps a child still running
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  /// The next complete line (without '\n'); false at end of output. `on_signal` runs whenever a
  /// signal interrupts the wait (a stop request can be acted on while no line comes).
  bool read_line(std::string& line, const std::function<void()>& on_signal = {});
  /// Waits for the child to end and returns its exit code (-signal when killed).
  int wait();
  /// What it wrote on stderr (complete once wait() returned).
  const std::string& err() const { return err_; }
  pid_t pid() const { return pid_; }

 private:
  void drain_err();
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string buffer_, err_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

}  // namespace mmlab::remote
