// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/util/file_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "core/util/error.h"

namespace mmlab {
namespace fs = std::filesystem;

namespace {

constexpr char kTemporaryMark[] = ".tmp.";

// The PID of "PID.N", the end of a temporary file's name after its mark; 0 for any other text.
long writer_pid(const std::string& rest) {
  const std::size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string::npos || dot + 1 == rest.size() ||
      rest.find_first_not_of("0123456789", dot + 1) != std::string::npos ||
      rest.find_first_not_of("0123456789") != dot) {
    return 0;
  }
  return std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
}

}  // namespace

void throw_write_error(const fs::path& path, int err, const WriteErrorText& text) {
  const std::string file = text.what.empty() ? path.string() : text.what + " " + path.string();
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    throw ResourceError("The disk is full while writing " + file + ".",
                        text.full_disk_fix.empty()
                            ? "Free some space (or choose another location) and try again."
                            : text.full_disk_fix);
  }
  throw UserError(
      "Cannot write " + file + ": " + std::strerror(err) + ".",
      text.other_fix.empty() ? "Check that its directory exists and is writable." : text.other_fix);
}

FileWriter::FileWriter(fs::path path, WriteErrorText text)
    : path_(std::move(path)), text_(std::move(text)) {
  std::random_device random;
  temporary_ = path_;
  temporary_ += kTemporaryMark + std::to_string(::getpid()) + "." + std::to_string(random());
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_write_error(path_, errno, text_);
}

FileWriter::~FileWriter() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(temporary_.c_str());
}

void FileWriter::fail(int err) {
  ::close(fd_);
  fd_ = -1;
  ::unlink(temporary_.c_str());
  throw_write_error(path_, err, text_);
}

void FileWriter::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void FileWriter::write_at(std::uint64_t offset, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  auto at = static_cast<off_t>(offset);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, size, at);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(errno);
    }
    p += n;
    at += n;
    size -= static_cast<std::size_t>(n);
  }
}

void FileWriter::commit() {
  // On some file systems fsync or close is the first to report a full disk.
  if (::fsync(fd_) != 0) fail(errno);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) {
    const int err = errno;
    ::unlink(temporary_.c_str());
    throw_write_error(path_, err, text_);
  }
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temporary_.c_str());
    throw_write_error(path_, err, text_);
  }
  // Makes the rename itself durable.
  const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

bool is_temporary_file(const fs::path& file) {
  const std::string name = file.filename().string();
  for (std::size_t at = name.find(kTemporaryMark, 1); at != std::string::npos;
       at = name.find(kTemporaryMark, at + 1)) {
    if (writer_pid(name.substr(at + sizeof(kTemporaryMark) - 1)) > 0) return true;
  }
  return false;
}

void remove_abandoned_temporaries(const fs::path& path) {
  const std::string prefix = path.filename().string() + kTemporaryMark;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = writer_pid(name.substr(prefix.size()));
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 ||
        errno != ESRCH) {
      continue;
    }
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

}  // namespace mmlab
