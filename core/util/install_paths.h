// SPDX-License-Identifier: GPL-3.0-or-later
// Where the program finds what it ships with: the data files (experiments/) and the plug-in
// modules (the SentencePiece module). An installed program looks beside itself (PREFIX/bin →
// PREFIX/share/mmlab, PREFIX/lib/mmlab); a program run from its build tree falls back to the
// build and source trees it was built from. The locations come from CMake's configured paths
// header, not from paths written into the code.
#pragma once

#include <filesystem>
#include <vector>

namespace mmlab {

/// The folder of the running executable (empty when it cannot be read).
std::filesystem::path executable_dir();

/// Folders that may hold the data files, most specific first: the install location relative to
/// the executable, then the source tree of this build.
std::vector<std::filesystem::path> data_dir_candidates();

/// Folders that may hold the plug-in modules, most specific first: beside the executable, the
/// install location relative to it, then the build tree's module folder.
std::vector<std::filesystem::path> module_dir_candidates();

}  // namespace mmlab
