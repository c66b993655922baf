# SPDX-License-Identifier: GPL-3.0-or-later
# The revision runs record is read when the program is built, not when CMake configures: run as
# `cmake -P` by ctest (tests/CMakeLists.txt) with GIT, SCRIPT (cmake/MmlabGitRev.cmake), WORK (a
# scratch folder), SOURCE_DIR and BINARY_DIR (this build).
#   1. In a scratch git repository: the header names the commit; run again at the same commit it is
#      left untouched (nothing rebuilds); after a later commit it names that commit.
#   2. In this build: building the revision target writes the source tree's current HEAD.

function(must_equal what got want)
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "${what}: got '${got}', want '${want}'")
  endif()
endfunction()

function(git out)
  execute_process(COMMAND ${GIT} -c user.name=test -c user.email=test@example.org
                          -c commit.gpgsign=false ${ARGN}
                  WORKING_DIRECTORY ${WORK}/repo RESULT_VARIABLE rc OUTPUT_VARIABLE text
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "git ${ARGN} failed: ${err}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(revision_in header out)
  file(READ ${header} text)
  string(REGEX MATCH "#define MMLAB_GIT_REV \"([^\"]*)\"" _ "${text}")
  set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

# 1. A scratch repository with two commits.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/repo)
set(header ${WORK}/git_rev.h)
git(_ init -q)
file(WRITE ${WORK}/repo/a.txt "one\n")
git(_ add a.txt)
git(_ commit -q -m one)
git(first rev-parse --short=12 HEAD)
execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${WORK}/repo -DOUT=${header} -P ${SCRIPT})
revision_in(${header} got)
must_equal("the revision after the first commit" "${got}" "${first}")

# Dated back to 2000: a rewrite would give it the current time.
execute_process(COMMAND touch -d @946684800 ${header} RESULT_VARIABLE rc)
must_equal("dating the header back" "${rc}" "0")
execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${WORK}/repo -DOUT=${header} -P ${SCRIPT})
file(TIMESTAMP ${header} stamp "%s" UTC)
must_equal("the header's time after a build at the same commit" "${stamp}" "946684800")

file(WRITE ${WORK}/repo/a.txt "two\n")
git(_ commit -q -am two)
git(second rev-parse --short=12 HEAD)
if(second STREQUAL first)
  message(FATAL_ERROR "the scratch repository's second commit has the first one's id")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${WORK}/repo -DOUT=${header} -P ${SCRIPT})
revision_in(${header} got)
must_equal("the revision after a later commit" "${got}" "${second}")

# 2. This build's own header, written by its build step.
execute_process(COMMAND ${GIT} rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(NOT rc EQUAL 0)
  set(head unknown)  # a source tree outside git records "unknown"
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} --target mmlab_git_rev
                RESULT_VARIABLE rc OUTPUT_QUIET)
must_equal("building mmlab_git_rev" "${rc}" "0")
revision_in(${BINARY_DIR}/core/generated/core/git_rev.h got)
must_equal("this build's recorded revision" "${got}" "${head}")
file(REMOVE_RECURSE ${WORK})
