# Finds every third-party library and decides MMLAB_WITH_CUDA / MMLAB_WITH_UI.
find_package(Threads REQUIRED)
find_package(Torch REQUIRED)
find_package(SQLite3 REQUIRED)
# CMake 3.30 renamed the imported target; use whichever this CMake provides.
if(TARGET SQLite3::SQLite3)
  set(MMLAB_SQLITE_TARGET SQLite3::SQLite3)
else()
  set(MMLAB_SQLITE_TARGET SQLite::SQLite3)
endif()
find_package(nlohmann_json 3 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)
add_library(mmlab_xxhash INTERFACE)
target_include_directories(mmlab_xxhash SYSTEM INTERFACE ${XXHASH_INCLUDE_DIR})
target_link_libraries(mmlab_xxhash INTERFACE ${XXHASH_LIBRARY})

# LibTorch's exported flags carry -D_GLIBCXX_USE_CXX11_ABI and friends; keep them, mark its
# include directories SYSTEM so -Wall -Wextra speak about our code only.
add_library(mmlab_torch INTERFACE)
target_link_libraries(mmlab_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(mmlab_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(mmlab_torch INTERFACE ${TORCH_CXX_FLAGS})

# CUDA: one switch, a loud message. The kernels library (kernels/) is built whenever nvcc is
# found, also against a LibTorch without CUDA: CI has nvcc but no GPU and still compiles and links
# every kernel. MMLAB_WITH_CUDA says whether kernels/ is built.
set(MMLAB_WITH_CUDA OFF)
set(_torch_has_cuda OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR TARGET c10_cuda)
  set(_torch_has_cuda ON)
  # The CUDA parts of core (peak memory, device queries) compile only against a CUDA LibTorch.
  target_compile_definitions(mmlab_torch INTERFACE MMLAB_TORCH_CUDA=1)
endif()
if(NOT MMLAB_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(MMLAB_WITH_CUDA ON)
  elseif(MMLAB_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MMLAB_CUDA=ON but nvcc was not found; install the CUDA toolkit (or put nvcc on PATH / set CMAKE_CUDA_COMPILER) or configure with -DMMLAB_CUDA=OFF.")
  else()
    message(STATUS "mmlab: CUDA kernels skipped (nvcc not found; set CMAKE_CUDA_COMPILER to build them)")
  endif()
endif()
if(MMLAB_WITH_CUDA)
  # One architecture keeps CI's compile short; H200 (sm_90a, with its PTX) unless the user or
  # CUDAARCHS chose others.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES 90a CACHE STRING "CUDA architectures of the kernels")
  endif()
  # Top level, not in kernels/: every target that links the kernels needs the language enabled.
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # Exactly one CUDA runtime per process. A CUDA LibTorch links the shared libcudart (its CMake
  # config links CUDA::cudart of this same toolkit), so the kernels link that one too: the
  # soname is loaded once and the kernels share LibTorch's runtime, its streams and its error
  # state. A static copy next to it would be a second runtime with its own state. Without a
  # CUDA LibTorch nothing else brings a runtime, and the static one spares the binaries a
  # libcudart.so dependency on machines that never touch a GPU.
  if(_torch_has_cuda)
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    set(MMLAB_CUDART_TARGET CUDA::cudart)
  else()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
    set(MMLAB_CUDART_TARGET CUDA::cudart_static)
  endif()
  # A CUDA LibTorch enables CUDA itself, sets CMAKE_CUDA_ARCHITECTURES to OFF and puts the
  # -gencode flags of TORCH_CUDA_ARCH_LIST into CMAKE_CUDA_FLAGS instead.
  if(CMAKE_CUDA_ARCHITECTURES)
    set(_archs "${CMAKE_CUDA_ARCHITECTURES}")
  else()
    set(_archs "TORCH_CUDA_ARCH_LIST ($ENV{TORCH_CUDA_ARCH_LIST})")
  endif()
  message(STATUS "mmlab: CUDA kernels for ${_archs} with nvcc ${CMAKE_CUDA_COMPILER_VERSION}, runtime ${MMLAB_CUDART_TARGET} (LibTorch with CUDA: ${_torch_has_cuda})")
endif()

# Data-parallel process groups (core/train/rank_group.cpp, through c10d): Gloo for CPU ranks
# needs Gloo's headers (Debian: libgloo-dev; LibTorch's own include folder where it ships them);
# NCCL for GPU ranks needs a CUDA LibTorch whose c10d has ProcessGroupNCCL, and NCCL's nccl.h
# (PyTorch's wheel brings it in site-packages/nvidia/nccl; else NCCL_HOME). Only that one source
# file sees these flags (MMLAB_C10D_DEFINITIONS, MMLAB_C10D_INCLUDE_DIRS): the others stay as
# they are, and so does the compiler cache's hold on them.
set(MMLAB_C10D_DEFINITIONS "")
set(MMLAB_C10D_INCLUDE_DIRS "")
set(MMLAB_WITH_GLOO OFF)
set(MMLAB_WITH_NCCL OFF)
find_path(MMLAB_GLOO_INCLUDE_DIR gloo/context.h HINTS ${TORCH_INCLUDE_DIRS})
if(MMLAB_GLOO_INCLUDE_DIR)
  set(MMLAB_WITH_GLOO ON)
  list(APPEND MMLAB_C10D_DEFINITIONS MMLAB_HAVE_GLOO=1)
  # A compiler's own folder (/usr/include) must not be given again: libstdc++'s #include_next
  # would then miss the C headers.
  if(NOT MMLAB_GLOO_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    list(APPEND MMLAB_C10D_INCLUDE_DIRS ${MMLAB_GLOO_INCLUDE_DIR})
  endif()
endif()
if(_torch_has_cuda)
  find_path(MMLAB_C10D_NCCL_DIR torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp
            PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  file(GLOB _nccl_hints "${TORCH_INSTALL_PREFIX}/../nvidia/*/include")
  find_path(MMLAB_NCCL_INCLUDE_DIR nccl.h HINTS $ENV{NCCL_HOME}/include ${_nccl_hints}
            ${CUDAToolkit_INCLUDE_DIRS})
  if(MMLAB_C10D_NCCL_DIR AND MMLAB_NCCL_INCLUDE_DIR)
    set(MMLAB_WITH_NCCL ON)
    list(APPEND MMLAB_C10D_DEFINITIONS MMLAB_HAVE_NCCL=1 USE_C10D_NCCL=1)
    if(NOT MMLAB_NCCL_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      list(APPEND MMLAB_C10D_INCLUDE_DIRS ${MMLAB_NCCL_INCLUDE_DIR})
    endif()
  endif()
endif()
message(STATUS "mmlab: data-parallel process groups: Gloo ${MMLAB_WITH_GLOO}, NCCL ${MMLAB_WITH_NCCL}")

# Qt 6 studio: needs Qt6 Widgets/PrintSupport/Svg and QCustomPlot's Qt 6 build.
set(MMLAB_WITH_UI OFF)
if(NOT MMLAB_UI STREQUAL "OFF")
  find_package(Qt6 QUIET COMPONENTS Widgets PrintSupport Svg Test)
  find_package(QCustomPlotQt6 QUIET)
  if(Qt6_FOUND AND TARGET QCustomPlotQt6::QCustomPlotQt6)
    set(MMLAB_WITH_UI ON)
  elseif(MMLAB_UI STREQUAL "ON")
    message(FATAL_ERROR "MMLAB_UI=ON but Qt 6 (qt6-base-dev, qt6-svg-dev) or QCustomPlot (libqcustomplot-dev) was not found.")
  else()
    message(STATUS "mmlab: studio skipped (Qt 6 found: ${Qt6_FOUND}, QCustomPlot Qt 6 found: ${QCustomPlotQt6_FOUND})")
  endif()
endif()

if(MMLAB_TESTS)
  find_package(GTest REQUIRED)
  find_package(benchmark QUIET)
endif()
