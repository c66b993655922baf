// SPDX-License-Identifier: GPL-3.0-or-later
// Where the program looks for its data files and plug-ins: the install location relative to the
// executable first, the trees of this build last.
#include "core/util/install_paths.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace mmlab {
namespace {

namespace fs = std::filesystem;

TEST(InstallPaths, TheInstalledLocationComesBeforeTheSourceTree) {
  const fs::path exe_dir = executable_dir();
  ASSERT_FALSE(exe_dir.empty());
  EXPECT_TRUE(fs::exists(exe_dir / "mmlab_util_tests"));
  const auto data = data_dir_candidates();
  ASSERT_EQ(data.size(), 2u);
  // PREFIX/bin/x → PREFIX/<datadir>/mmlab (datadir is CMake's CMAKE_INSTALL_DATADIR).
  EXPECT_EQ(data[0].filename(), "mmlab");
  EXPECT_EQ(data[0].string().rfind(exe_dir.parent_path().string() + "/", 0), 0u) << data[0];
  // The source tree of this build holds the experiments.
  EXPECT_TRUE(fs::is_directory(data[1] / "experiments" / "paper")) << data[1];
  EXPECT_EQ(fs::canonical(data[1]), fs::canonical(MMLAB_SOURCE_DIR));
}

TEST(InstallPaths, ModulesAreLookedForBesideTheProgramThenInstalledThenInTheBuildTree) {
  const fs::path exe_dir = executable_dir();
  const auto modules = module_dir_candidates();
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[0], exe_dir);
  EXPECT_EQ(modules[1].filename(), "mmlab");
  EXPECT_EQ(modules[1].string().rfind(exe_dir.parent_path().string() + "/", 0), 0u) << modules[1];
  EXPECT_EQ(fs::canonical(modules[2]), fs::canonical(fs::path(MMLAB_BINARY_DIR) / "lib"));
}

}  // namespace
}  // namespace mmlab
