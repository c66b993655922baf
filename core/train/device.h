// SPDX-License-Identifier: GPL-3.0-or-later
// Choosing the device a run trains on, and recognising out-of-memory errors.
#pragma once

#include <torch/torch.h>

#include <exception>
#include <string>

namespace mmlab {

/// "cpu", "cuda" or "cuda:N"; a CUDA device that is not there is a ResourceError naming it.
torch::Device resolve_device(const std::string& name);

/// "cpu (2 threads)" or "cuda:0 (NVIDIA H200)".
std::string describe_device(const torch::Device& device);

/// True for LibTorch's CUDA (and CPU allocator) out-of-memory errors.
bool is_out_of_memory(const std::exception& e);

/// Sets LibTorch's intra-op threads: `threads`, or every core when 0. Debian's OpenMP defaults to
/// one thread otherwise.
void set_cpu_threads(int threads);

}  // namespace mmlab
