// SPDX-License-Identifier: GPL-3.0-or-later
// Writing a file with POSIX calls behind one RAII type, so that every writer reports a full disk
// and other write failures the same way and never leaks a descriptor.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace mmlab {

/// Throws the user's error for a failed write of `path` with errno `err`: a ResourceError for a
/// full disk (ENOSPC, EDQUOT), else a UserError with the system's reason.
[[noreturn]] void throw_write_error(const std::filesystem::path& path, int err);

/// A file open for writing, closed when the writer goes (RAII). Every failure is reported as
/// write_file_atomically's are: a full disk as a ResourceError, anything else as a UserError, both
/// naming `shown` (the file the user asked for, when `file` is its temporary stand-in).
class FileWriter {
 public:
  /// Creates or truncates `file` (mode 0644).
  explicit FileWriter(const std::filesystem::path& file, std::filesystem::path shown = {});
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  /// Writes all `size` bytes (retrying short writes and EINTR).
  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  /// Closes now, reporting what close() found (on some file systems the first sign of a full
  /// disk). Without it the destructor closes and ignores errors, for a write that already failed.
  void close();

 private:
  int fd_ = -1;
  std::filesystem::path shown_;
};

}  // namespace mmlab
