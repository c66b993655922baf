// SPDX-License-Identifier: GPL-3.0-or-later
// The one way this project writes a file: into a temporary file beside it, fsync'ed and renamed
// over it on commit(), so a reader (or a later run) sees the old file or the whole new one, never
// a part. Every failure is the user's error naming the file, a full disk as a ResourceError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace mmlab {

/// How a failed write of one kind of file is told. Empty fields take the general wording.
struct WriteErrorText {
  /// Names the file in the sentence: "the checkpoint" gives "… writing the checkpoint X.".
  std::string what;
  /// The fix for a full disk (default: free some space or choose another location).
  std::string full_disk_fix;
  /// The fix for any other failure (default: check that the folder exists and is writable).
  std::string other_fix;
};

/// Throws the user's error for a failed write of `path` with errno `err`: a ResourceError for a
/// full disk (ENOSPC, EDQUOT) or a file past the size limit (EFBIG), else a UserError with the
/// system's reason.
[[noreturn]] void throw_write_error(const std::filesystem::path& path, int err,
                                    const WriteErrorText& text = {});

/// A file being written (RAII). Bytes go to `path`.tmp.PID.N; commit() fsyncs it, renames it over
/// `path` and fsyncs the folder. A writer that goes without commit() (an exception, a failed
/// write) removes its temporary file and leaves `path` as it was.
class FileWriter {
 public:
  /// Creates the temporary file (mode 0644) in `path`'s folder, which must exist.
  explicit FileWriter(std::filesystem::path path, WriteErrorText text = {});
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  /// Appends all `size` bytes (retrying short writes and EINTR).
  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  /// Writes over bytes already written, at `offset` from the start (a header filled in last).
  void write_at(std::uint64_t offset, const void* data, std::size_t size);
  /// Makes the file `path`: flushed to the disk, renamed over the old one. Once only.
  void commit();

  const std::filesystem::path& path() const { return path_; }

 private:
  [[noreturn]] void fail(int err);

  std::filesystem::path path_;
  std::filesystem::path temporary_;
  WriteErrorText text_;
  int fd_ = -1;
};

/// Whether `file` is a FileWriter's temporary file ("NAME.tmp.PID.N").
bool is_temporary_file(const std::filesystem::path& file);

/// Removes the temporary files of `path` (its folder's `path`.tmp.PID.N) whose writer's process
/// is gone: litter of a process killed while writing. A write in progress is left alone.
void remove_abandoned_temporaries(const std::filesystem::path& path);

}  // namespace mmlab
