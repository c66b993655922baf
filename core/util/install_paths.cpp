// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/util/install_paths.h"

#include <unistd.h>

#include <string>

#include "core/mmlab_paths.h"  // configured by CMake (cmake/mmlab_paths.h.in)

namespace mmlab {
namespace fs = std::filesystem;

fs::path executable_dir() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return {};
  return fs::path(std::string(exe, static_cast<size_t>(n))).parent_path();
}

std::vector<fs::path> data_dir_candidates() {
  std::vector<fs::path> out;
  const fs::path dir = executable_dir();
  if (!dir.empty()) out.push_back(dir.parent_path() / MMLAB_INSTALL_DATA_DIR);
  out.emplace_back(MMLAB_SOURCE_DATA_DIR);
  return out;
}

std::vector<fs::path> module_dir_candidates() {
  std::vector<fs::path> out;
  const fs::path dir = executable_dir();
  if (!dir.empty()) {
    out.push_back(dir);
    out.push_back(dir.parent_path() / MMLAB_INSTALL_MODULE_DIR);
  }
  out.emplace_back(MMLAB_BUILD_MODULE_DIR);
  return out;
}

}  // namespace mmlab
