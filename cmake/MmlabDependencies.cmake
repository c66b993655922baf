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
# Debian's SentencePiece carries a private copy of protobuf-lite and exports its symbols, while
# Debian's LibTorch loads the full libprotobuf of the same version: if SentencePiece comes first in
# the process's symbol lookup order, libprotobuf's own start-up code binds to SentencePiece's copy
# and crashes before main(). Making libprotobuf a direct dependency listed ahead of SentencePiece
# puts it first. (PyTorch's own LibTorch links protobuf statically and hidden: nothing to do there.)
add_library(mmlab_sentencepiece INTERFACE)
find_library(MMLAB_SYSTEM_PROTOBUF NAMES libprotobuf.so.32 libprotobuf.so)
if(MMLAB_SYSTEM_PROTOBUF)
  target_link_libraries(mmlab_sentencepiece INTERFACE
                        "-Wl,--no-as-needed" ${MMLAB_SYSTEM_PROTOBUF} "-Wl,--as-needed")
endif()
target_link_libraries(mmlab_sentencepiece INTERFACE PkgConfig::SENTENCEPIECE)
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

# CUDA: one switch, a loud message.
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
  if(CMAKE_CUDA_COMPILER AND _torch_has_cuda)
    set(MMLAB_WITH_CUDA ON)
  elseif(MMLAB_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MMLAB_CUDA=ON but nvcc or a CUDA-enabled LibTorch was not found; install both or configure with -DMMLAB_CUDA=OFF.")
  else()
    message(STATUS "mmlab: CUDA kernels skipped (nvcc found: ${CMAKE_CUDA_COMPILER}, LibTorch with CUDA: ${_torch_has_cuda})")
  endif()
endif()

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
