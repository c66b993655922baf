// SPDX-License-Identifier: GPL-3.0-or-later
// Shell words for the remote side of SSH and Slurm runs (internal to core/remote).
#pragma once

#include <cstdio>
#include <ctime>
#include <random>
#include <string>

#include "core/remote/host.h"
#include "core/remote/ssh.h"

namespace mmlab::remote {

// A path below the host's folder as one shell word; a folder written `~/…` stays relative to
// the remote home (which only the remote shell knows).
inline std::string remote_path(const Host& host, const std::string& below = "") {
  const std::string& dir = host.dir;
  if (dir == "~") return "\"$HOME\"" + (below.empty() ? "" : shell_quote(below));
  if (dir.rfind("~/", 0) == 0) return "\"$HOME\"/" + shell_quote(dir.substr(2) + below);
  return shell_quote(dir + below);
}

inline std::string mmlab_word(const Host& host) {
  if (host.mmlab.rfind("~/", 0) == 0) return "\"$HOME\"/" + shell_quote(host.mmlab.substr(2));
  return shell_quote(host.mmlab);
}

inline std::string new_tag() {
  std::random_device rd;
  char buf[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::snprintf(buf, sizeof buf, "%04d%02d%02d-%02d%02d%02d-%08x", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rd());
  return buf;
}

}  // namespace mmlab::remote
