// SPDX-License-Identifier: GPL-3.0-or-later
// Helpers shared by every test binary: temporary directories and device detection.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

namespace mmlab::test {

/// True when a CUDA device is visible (checked without linking CUDA: via /proc and the driver's
/// device nodes), so torch-free test binaries can use the same main.
inline bool cuda_available() {
  return std::filesystem::exists("/dev/nvidia0") || std::filesystem::exists("/dev/nvidiactl");
}

/// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("mmlab-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace mmlab::test
