// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace mmlab::remote {

namespace {

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  }
};

// Forks argv with the given pipe ends as stdin/stdout/stderr (-1: /dev/null for stdin).
pid_t spawn(const std::vector<std::string>& argv, int in, int out, int err) {
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // The child must not inherit a blocked signal mask or ignored SIGPIPE from its parent's
    // start-up handling (ssh relies on both defaults).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (in < 0) in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode(status);
}

}  // namespace

ProcessOutput run_process(const std::vector<std::string>& argv, const std::string& input) {
  Pipe in, out, err;
  const pid_t pid = spawn(argv, in.fd[0], out.fd[1], err.fd[1]);
  ::close(in.fd[0]);
  ::close(out.fd[1]);
  ::close(err.fd[1]);
  ProcessOutput result;
  size_t written = 0;
  int in_fd = in.fd[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  } else {
    ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int open_fds = 2;
  bool out_open = true, err_open = true;
  char buf[65536];
  // One poll loop for all three pipes, so a child that writes much before it reads all its input
  // (or the other way round) cannot deadlock against us.
  while (open_fds > 0 || in_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out.fd[0], POLLIN, 0};
    if (err_open) fds[n++] = {err.fd[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
        if (written >= input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      const ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (fds[i].fd == out.fd[0] ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (fds[i].fd == out.fd[0])
          out_open = false;
        else
          err_open = false;
        --open_fds;
      }
    }
  }
  ::close(out.fd[0]);
  ::close(err.fd[0]);
  result.exit_code = wait_for(pid);
  return result;
}

LineProcess::LineProcess(const std::vector<std::string>& argv) {
  Pipe out, err;
  pid_ = spawn(argv, -1, out.fd[1], err.fd[1]);
  ::close(out.fd[1]);
  ::close(err.fd[1]);
  out_fd_ = out.fd[0];
  err_fd_ = err.fd[0];
  ::fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

LineProcess::~LineProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGTERM);
    wait();
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void LineProcess::drain_err() {
  char buf[4096];
  for (;;) {
    const ssize_t r = ::read(err_fd_, buf, sizeof buf);
    if (r <= 0) return;
    // Keep the end, which is where ssh and shells put the reason.
    err_.append(buf, static_cast<size_t>(r));
    if (err_.size() > 65536) err_.erase(0, err_.size() - 65536);
  }
}

bool LineProcess::read_line(std::string& line, const std::function<void()>& on_signal) {
  char buf[4096];
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    drain_err();
    const ssize_t r = ::read(out_fd_, buf, sizeof buf);
    if (r > 0) {
      buffer_.append(buf, static_cast<size_t>(r));
    } else if (r < 0 && errno == EINTR) {
      if (on_signal) on_signal();
      continue;
    } else {
      return false;  // an unterminated last line is incomplete: it is read again next time
    }
  }
}

int LineProcess::wait() {
  if (reaped_) return exit_code_;
  exit_code_ = wait_for(pid_);
  reaped_ = true;
  ::fcntl(err_fd_, F_SETFL, 0);
  drain_err();
  return exit_code_;
}

}  // namespace mmlab::remote
