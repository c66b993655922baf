// SPDX-License-Identifier: GPL-3.0-or-later
// File-system helpers: atomic writes (temp file + fsync + rename) and XDG locations.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace mmlab {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
/// A C stream (std::fopen's), closed when it goes.
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

/// Writes `path` atomically: `write` fills a temporary file beside it, which is fsync'ed and
/// renamed over `path`. On any failure (including a full disk) the temporary file is removed, the
/// old `path` is untouched, and a UserError/ResourceError names the file.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(const std::filesystem::path& tmp)>& write);

/// Same, for a byte string.
void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

/// Reads a whole file; a missing or unreadable file is a UserError naming it.
std::string read_file(const std::filesystem::path& path);

/// $XDG_DATA_HOME/mmlab (default ~/.local/share/mmlab), created on demand.
std::filesystem::path data_home();

/// data_home()/results.sqlite
std::filesystem::path default_db_path();

}  // namespace mmlab
