// SPDX-License-Identifier: GPL-3.0-or-later
// File-system helpers: whole-file writes and reads, and XDG locations.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/util/file_writer.h"

namespace mmlab {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
/// A C stream (std::fopen's), closed when it goes.
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

/// Writes `bytes` as `path` through a FileWriter (core/util/file_writer.h): the old file or the
/// whole new one, never a part; a failure is a UserError/ResourceError naming the file.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                           const WriteErrorText& text = {});

/// Reads a whole file; a missing or unreadable file is a UserError naming it.
std::string read_file(const std::filesystem::path& path);

/// $XDG_DATA_HOME/mmlab (default ~/.local/share/mmlab), created on demand.
std::filesystem::path data_home();

/// data_home()/results.sqlite
std::filesystem::path default_db_path();

}  // namespace mmlab
