# SPDX-License-Identifier: GPL-3.0-or-later
# The source lists are explicit (no file(GLOB) in the build): this check, run as `cmake -P` by ctest
# with SOURCE_DIR, finds every source file of the tree and fails for one that its folder's
# CMakeLists.txt does not name, so a new file cannot be left out of the build or the tests.

set(missing "")

# Files matching `pattern` under `dir` (relative to SOURCE_DIR) must appear in `cmake_file` as the
# path relative to `relative_to`, stripped of `strip` (a suffix), as a whole word.
function(check dir pattern cmake_file relative_to strip)
  file(READ ${SOURCE_DIR}/${cmake_file} listed)
  file(GLOB_RECURSE found RELATIVE ${SOURCE_DIR}/${relative_to} ${SOURCE_DIR}/${dir}/${pattern})
  foreach(f ${found})
    if(NOT strip STREQUAL "")
      string(REGEX REPLACE "${strip}$" "" f "${f}")
    endif()
    string(REGEX REPLACE "([.+])" "\\\\\\1" word "${f}")
    if(NOT listed MATCHES "(^|[ \t\n(/])${word}([ \t\n)]|$)")
      list(APPEND missing "${relative_to}/${f} (in ${cmake_file})")
    endif()
  endforeach()
  set(missing "${missing}" PARENT_SCOPE)
endfunction()

check(core *.cpp core/CMakeLists.txt core "")
check(ui *.cpp ui/CMakeLists.txt ui "")
check(ui *.h ui/CMakeLists.txt ui "")
check(kernels/src *.cpp kernels/CMakeLists.txt kernels "")
check(kernels/src *.cu kernels/CMakeLists.txt kernels "")
check(kernels/dev *_dev.cpp kernels/dev/CMakeLists.txt kernels/dev "\\.cpp")
check(tests/core *_test.cpp tests/CMakeLists.txt tests "")
check(tests/e2e *_test.cpp tests/CMakeLists.txt tests "")
check(tests/kernels *_test.cpp tests/CMakeLists.txt tests "")
check(tests/ui test_*.cpp tests/CMakeLists.txt tests "")
check(tests/bench *.cpp tests/bench/CMakeLists.txt tests/bench "\\.cpp")
check(app *.cpp app/CMakeLists.txt app "")

if(missing)
  string(REPLACE ";" "\n  " text "${missing}")
  message(FATAL_ERROR "Source files no source list names (add each to the CMakeLists.txt shown):\n  ${text}")
endif()
