# Compiler flags shared by every target, and ccache when it is installed.
if(NOT CMAKE_CXX_STANDARD)
  set(CMAKE_CXX_STANDARD 17)
endif()
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

find_program(MMLAB_CCACHE ccache)
if(MMLAB_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${MMLAB_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${MMLAB_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${MMLAB_CCACHE})
endif()

# Warnings apply to our own targets only (LibTorch's headers are SYSTEM includes).
function(mmlab_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
endfunction()
