// SPDX-License-Identifier: GPL-3.0-or-later
// How the launchers of the .cu files report a failed launch to their glue: nullptr or CUDA's text.
#pragma once

#include <cuda_runtime.h>

namespace mmlab::kernels {

/// nullptr when the last launch on this thread succeeded, else CUDA's error text.
inline const char* last_launch_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace mmlab::kernels
