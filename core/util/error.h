// SPDX-License-Identifier: GPL-3.0-or-later
// Errors a user can cause: one sentence naming the thing, plus a hint saying how to fix it.
// Libraries throw these; only main() turns them into a message and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace mmlab {

/// Exit codes of every mmlab command (documented in docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,     ///< the run or command failed (an internal error, a crash of the model)
  kExitUsage = 2,       ///< bad command line
  kExitBadInput = 3,    ///< bad config, missing/corrupt file, unwritable path: the user can fix it
  kExitNoResource = 4,  ///< no GPU, out of GPU memory, disk full
  kExitDiverged = 5,    ///< training stopped on a NaN/Inf loss
  /// a remote host could not be reached and nothing was started there: the same command may
  /// simply be tried again later (the studio's queue does)
  kExitHostUnreachable = 6,
};

/// An error the user can fix. `what()` is "<message> <hint>" in one line.
class UserError : public std::runtime_error {
 public:
  UserError(const std::string& message, const std::string& hint = "", ExitCode code = kExitBadInput)
      : std::runtime_error(hint.empty() ? message : message + " " + hint),
        message_(message),
        hint_(hint),
        code_(code) {}

  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }
  ExitCode code() const { return code_; }

 private:
  std::string message_;
  std::string hint_;
  ExitCode code_;
};

/// Lack of a resource (GPU, GPU memory, disk space).
class ResourceError : public UserError {
 public:
  explicit ResourceError(const std::string& message, const std::string& hint = "")
      : UserError(message, hint, kExitNoResource) {}
};

}  // namespace mmlab
