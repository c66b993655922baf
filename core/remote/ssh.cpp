// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/ssh.h"

namespace mmlab::remote {

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::vector<std::string> ssh_argv(const Host& host, const std::string& remote_command) {
  std::vector<std::string> argv = {"ssh"};
  if (!host.ssh_config.empty()) argv.insert(argv.end(), {"-F", host.ssh_config});
  // Never a password prompt: a studio has no terminal to type it into.
  argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "ConnectTimeout=15"});
  for (const auto& o : host.ssh_options) argv.insert(argv.end(), {"-o", o});
  if (host.port > 0) argv.insert(argv.end(), {"-p", std::to_string(host.port)});
  argv.push_back(host.destination());
  argv.push_back("--");
  argv.push_back(remote_command);
  return argv;
}

ProcessOutput run_on_host(const Host& host, const std::string& remote_command,
                          const std::string& input) {
  return run_process(ssh_argv(host, remote_command), input);
}

std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of("\r\n \t");
  if (end == std::string::npos) return "";
  size_t begin = text.find_last_of('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  return text.substr(begin, end - begin + 1);
}

std::string unreachable_sentence(const Host& host, const ProcessOutput& out) {
  std::string why = last_line(out.err);
  if (out.exit_code == 127 && why.empty()) why = "the ssh command was not found";
  while (!why.empty() && (why.back() == '.' || why.back() == ' ')) why.pop_back();
  return "The host " + host.name + " (" + host.target() + ") cannot be reached over ssh (" +
         (why.empty() ? "no reason given" : why) + "). Check that `ssh " +
         (host.port > 0 ? "-p " + std::to_string(host.port) + " " : "") + host.destination() +
         "` logs in without a password (key or agent), then try again.";
}

UserError unreachable_error(const Host& host, const ProcessOutput& out) {
  return UserError(unreachable_sentence(host, out), "", kExitHostUnreachable);
}

}  // namespace mmlab::remote
