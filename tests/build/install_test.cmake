# SPDX-License-Identifier: GPL-3.0-or-later
# `cmake --install` of this build into a scratch prefix: the programs, the SentencePiece module and
# the data files land under it, and the installed mmlab reads the installed experiments (not the
# source tree's). Run as `cmake -P` by ctest with BINARY_DIR, WORK (the prefix), MODULE_DIR (the
# modules' folder under it) and STUDIO (ON when the studio is built).

file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${WORK}
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${err}")
endif()

set(expected bin/mmlab ${MODULE_DIR}/libmmlab_spm.so share/mmlab/experiments/paper/25m.json
             share/mmlab/experiments/quick-compare.json)
if(STUDIO)
  list(APPEND expected bin/mmlab-studio share/applications/mmlab-studio.desktop
       share/icons/hicolor/scalable/apps/mmlab-studio.svg)
endif()
foreach(f ${expected})
  if(NOT EXISTS ${WORK}/${f})
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()

# `mmlab models` names the experiment files it read.
execute_process(COMMAND ${WORK}/bin/mmlab models RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the installed mmlab models failed (${rc}): ${err}")
endif()
string(FIND "${out}" "(${WORK}/share/mmlab/experiments/paper/25m.json)" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the installed mmlab did not read the installed experiments:\n${out}")
endif()
file(REMOVE_RECURSE ${WORK})
