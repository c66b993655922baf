// SPDX-License-Identifier: GPL-3.0-or-later
// The one file that includes the generated revision header: a new commit recompiles only this.
#include "core/util/build_info.h"

#include "core/git_rev.h"  // generated at build time (core/CMakeLists.txt)

namespace mmlab {

std::string_view git_revision() {
  return MMLAB_GIT_REV;
}

}  // namespace mmlab
