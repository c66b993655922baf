// SPDX-License-Identifier: GPL-3.0-or-later
// A real OpenSSH server for the remote-run tests: Debian's sshd on a free loopback port, with a
// host key and a user key generated for the test and an ssh client config that touches nothing
// in ~/.ssh. It is ready when it says it listens.
#pragma once

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "core/remote/host.h"
#include "core/remote/process.h"
#include "e2e/server_process.h"
#include "test_support.h"

namespace mmlab::test {

class SshServer {
 public:
  /// Starts sshd with its files under `dir`; its sessions get the variables of `session_env`
  /// (ssh's SetEnv, sshd's AcceptEnv). skip_reason() is non-empty when it cannot run here.
  SshServer(const std::filesystem::path& dir, const std::map<std::string, std::string>& session_env)
      : dir_(dir) {
    namespace fs = std::filesystem;
    const char* sshd = "/usr/sbin/sshd";
    if (!fs::exists(sshd) || ::access("/usr/bin/ssh", X_OK) != 0 ||
        ::access("/usr/bin/ssh-keygen", X_OK) != 0) {
      skip_ = "sshd, ssh or ssh-keygen is not installed (Debian openssh-server, openssh-client)";
      return;
    }
    // sshd refuses to start without its privilege-separation folder.
    std::error_code ec;
    if (!fs::is_directory("/run/sshd", ec) && !fs::create_directories("/run/sshd", ec)) {
      skip_ = "/run/sshd is missing and cannot be created (sshd needs it; run as root)";
      return;
    }
    fs::create_directories(dir_);
    for (const char* key : {"host_key", "user_key"}) {
      auto r = remote::run_process(
          {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / key).string()});
      if (r.exit_code != 0) {
        skip_ = "ssh-keygen failed: " + r.err;
        return;
      }
    }
    fs::copy_file(dir_ / "user_key.pub", dir_ / "authorized_keys");
    const passwd* pw = ::getpwuid(::getuid());
    user_ = pw ? pw->pw_name : "root";
    for (int attempt = 0; attempt < 5 && port_ == 0; ++attempt) start(session_env);
    if (port_ == 0) skip_ = "sshd did not start: " + log_;
  }

  const std::string& skip_reason() const { return skip_; }
  int port() const { return port_; }

  /// A host entry for this server (remote folder and mmlab program to be filled in).
  remote::Host host(const std::string& name) const {
    remote::Host h;
    h.name = name;
    h.kind = remote::HostKind::kSsh;
    h.user = user_;
    h.address = "127.0.0.1";
    h.port = port_;
    h.ssh_config = (dir_ / "ssh_config").string();
    return h;
  }

 private:
  void start(const std::map<std::string, std::string>& session_env) {
    const int port = free_loopback_port();
    std::string accept, set;
    for (const auto& [k, v] : session_env) {
      accept += " " + k;
      set += " " + k + "=" + v;
    }
    {
      std::ofstream c(dir_ / "sshd_config");
      c << "Port " << port << "\nListenAddress 127.0.0.1\nHostKey " << (dir_ / "host_key").string()
        << "\nAuthorizedKeysFile " << (dir_ / "authorized_keys").string()
        << "\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
           "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n"
           "UsePAM no\nPidFile none\n"
        << (accept.empty() ? "" : "AcceptEnv" + accept + "\n");
    }
    {
      std::ifstream pub(dir_ / "host_key.pub");
      std::string key((std::istreambuf_iterator<char>(pub)), {});
      std::ofstream k(dir_ / "known_hosts");
      k << "[127.0.0.1]:" << port << " " << key;
      std::ofstream c(dir_ / "ssh_config");
      c << "Host *\n  IdentityFile " << (dir_ / "user_key").string()
        << "\n  IdentitiesOnly yes\n  UserKnownHostsFile " << (dir_ / "known_hosts").string()
        << "\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n"
        << (set.empty() ? "" : "  SetEnv" + set + "\n");
    }
    server_ =
        std::make_unique<ServerProcess>(std::vector<std::string>{"/usr/sbin/sshd", "-D", "-e", "-f",
                                                                 (dir_ / "sshd_config").string()},
                                        "Server listening on");
    if (server_->ready()) {
      port_ = port;
    } else {
      log_ = server_->log();  // say, the port was taken meanwhile: try another one
      server_.reset();
    }
  }

  std::filesystem::path dir_;
  std::string user_, skip_, log_;
  int port_ = 0;
  std::unique_ptr<ServerProcess> server_;
};

}  // namespace mmlab::test
