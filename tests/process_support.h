// SPDX-License-Identifier: GPL-3.0-or-later
// Running the built `mmlab` binary as a child process from tests, and a small synthetic corpus.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace mmlab::test {

inline std::string mmlab_binary() {
  return std::string(MMLAB_BINARY_DIR) + "/app/mmlab";
}

struct ProcessResult {
  int exit_code = -1;  ///< -signal when killed
  std::string out, err;
};

/// How a child mmlab starts besides its arguments and environment.
struct SpawnOptions {
  std::filesystem::path cwd;     ///< working directory; empty = the test's own
  bool drop_privileges = false;  ///< as root, become uid/gid 65534 so permissions apply
};

/// Starts `mmlab args...` with extra environment; stdout/stderr go to the given files.
inline pid_t spawn_mmlab(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env, const std::string& out_file,
                         const std::string& err_file, const SpawnOptions& how = {}) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!how.cwd.empty() && ::chdir(how.cwd.c_str()) != 0) ::_exit(126);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    if (how.drop_privileges && ::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      ::_exit(126);
    }
    std::vector<std::string> all = {mmlab_binary()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : all) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Runs `mmlab args...` to completion.
inline ProcessResult run_mmlab(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env,
                               const std::filesystem::path& scratch, const SpawnOptions& how = {}) {
  const auto out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  ProcessResult r;
  r.exit_code = wait_exit(spawn_mmlab(args, env, out, err, how));
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

/// Writes `docs` plain-text documents of English-like sentences (deterministic) into `dir`.
inline void write_synthetic_corpus(const std::filesystem::path& dir, int docs = 12,
                                   int sentences = 120) {
  static const char* subjects[] = {"the cat", "a dog", "the old man", "my sister", "the bird"};
  static const char* verbs[] = {"sees", "likes", "finds", "carries", "watches"};
  static const char* objects[] = {"the red ball", "a small house", "the river", "an apple",
                                  "the garden"};
  std::filesystem::create_directories(dir);
  uint64_t state = 12345;
  auto next = [&](int n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((state >> 33) % static_cast<uint64_t>(n));
  };
  for (int d = 0; d < docs; ++d) {
    std::ofstream f(dir / ("doc" + std::to_string(d) + ".txt"));
    for (int s = 0; s < sentences; ++s) {
      f << subjects[next(5)] << " " << verbs[next(5)] << " " << objects[next(5)] << ". ";
    }
  }
}

}  // namespace mmlab::test
