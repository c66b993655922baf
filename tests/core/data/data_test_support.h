// SPDX-License-Identifier: GPL-3.0-or-later
// Helpers for core/data tests: a private XDG data home (so caches and trained models never touch
// the user's), file writing, and locating GPT-2's files.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "core/data/tokenizer.h"
#include "test_support.h"

namespace mmlab::test {

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Points XDG_DATA_HOME at a fresh temporary directory for the object's lifetime.
class ScopedDataHome {
 public:
  ScopedDataHome() {
    if (const char* old = std::getenv("XDG_DATA_HOME")) old_ = old;
    ::setenv("XDG_DATA_HOME", dir_.path().c_str(), 1);
  }
  ~ScopedDataHome() {
    if (old_) {
      ::setenv("XDG_DATA_HOME", old_->c_str(), 1);
    } else {
      ::unsetenv("XDG_DATA_HOME");
    }
  }
  ScopedDataHome(const ScopedDataHome&) = delete;
  ScopedDataHome& operator=(const ScopedDataHome&) = delete;
  std::filesystem::path mmlab() const { return dir_.path() / "mmlab"; }

 private:
  TempDir dir_;
  std::optional<std::string> old_;
};

/// GPT-2's installed files ($MMLAB_GPT2_DIR or data_home()/tokenizers/gpt2), or empty.
inline std::filesystem::path gpt2_dir() {
  const std::filesystem::path dir = data::default_gpt2_dir();
  if (std::filesystem::exists(dir / "encoder.json") && std::filesystem::exists(dir / "vocab.bpe")) {
    return dir;
  }
  if (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt")) {
    return dir;
  }
  return {};
}

#define MMLAB_REQUIRE_GPT2(dir)                                                         \
  const std::filesystem::path dir = ::mmlab::test::gpt2_dir();                          \
  if (dir.empty()) {                                                                    \
    GTEST_SKIP() << "GPT-2's encoder.json + vocab.bpe are not installed in "            \
                 << ::mmlab::data::default_gpt2_dir()                                   \
                 << "; run scripts/get-corpus or set MMLAB_GPT2_DIR to run this test."; \
  }

}  // namespace mmlab::test
