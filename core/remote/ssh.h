// SPDX-License-Identifier: GPL-3.0-or-later
// Commands on a host through the user's own `ssh` (their keys, agent and ~/.ssh/config; never a
// password: BatchMode=yes makes ssh fail instead of asking).
#pragma once

#include <string>
#include <vector>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "core/util/error.h"

namespace mmlab::remote {

/// `text` as one word for a POSIX shell (single quotes).
std::string shell_quote(const std::string& text);

/// The ssh command line that runs `remote_command` (a shell command line) on `host`.
std::vector<std::string> ssh_argv(const Host& host, const std::string& remote_command);

/// ssh's own exit code for "could not connect or authenticate" (the remote command's codes are
/// passed through otherwise).
inline constexpr int kSshFailed = 255;

/// Runs `remote_command` on `host` to the end.
ProcessOutput run_on_host(const Host& host, const std::string& remote_command,
                          const std::string& input = "");

/// The last non-empty line of ssh's stderr, for messages ("Connection refused", …).
std::string last_line(const std::string& text);

/// One sentence for a failed connection to `host`, naming it and the fix.
std::string unreachable_sentence(const Host& host, const ProcessOutput& out);

/// True when `out` is ssh failing to reach the host (not the remote command's own failure).
inline bool unreachable(const ProcessOutput& out) {
  return out.exit_code == kSshFailed || out.exit_code < 0;
}

/// That sentence as the error of a command that reached nothing (exit kExitHostUnreachable).
UserError unreachable_error(const Host& host, const ProcessOutput& out);

}  // namespace mmlab::remote
