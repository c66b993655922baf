// SPDX-License-Identifier: GPL-3.0-or-later
// Shared gtest main: tests named *_CUDA are filtered out when no CUDA device is present, so the
// same binaries run on a CPU-only CI machine and on the GPU machine.
#include <gtest/gtest.h>

#include <string>

#include "test_support.h"
#ifdef MMLAB_HAVE_KERNELS
#include "kernels/register.h"
#endif

int main(int argc, char** argv) {
#ifdef MMLAB_HAVE_KERNELS
  // Before InitGoogleTest: parameterised op tests list the registered implementations there.
  mmlab::kernels::register_all();
#endif
  ::testing::InitGoogleTest(&argc, argv);
  if (!mmlab::test::cuda_available()) {
    std::string filter = ::testing::GTEST_FLAG(filter);
    const std::string exclude = "*_CUDA:*_CUDA/*:*/*_CUDA/*";
    if (filter.find('-') == std::string::npos) {
      filter += "-" + exclude;
    } else {
      filter += ":" + exclude;
    }
    ::testing::GTEST_FLAG(filter) = filter;
  }
  return RUN_ALL_TESTS();
}
