// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/util/file_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/util/error.h"

namespace mmlab {
namespace fs = std::filesystem;

void throw_write_error(const fs::path& path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    throw ResourceError("The disk is full while writing " + path.string() + ".",
                        "Free some space (or choose another location) and try again.");
  }
  throw UserError("Cannot write " + path.string() + ": " + std::strerror(err) + ".",
                  "Check that its directory exists and is writable.");
}

FileWriter::FileWriter(const fs::path& file, fs::path shown)
    : shown_(shown.empty() ? file : std::move(shown)) {
  fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_write_error(shown_, errno);
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_write_error(shown_, errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void FileWriter::close() {
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw_write_error(shown_, errno);
}

}  // namespace mmlab
