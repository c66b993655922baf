// SPDX-License-Identifier: GPL-3.0-or-later
// Every difference between the LibTorch versions we build against (Debian's 1.13 CPU build and
// 2.x with CUDA) lives here, so the rest of the code reads the same on both.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <string>

#if defined(MMLAB_TORCH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#define MMLAB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||        \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace mmlab::compat {

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

/// The CUDA runtime LibTorch runs on, as "major.minor" ("12.8"); "" in a build without CUDA.
inline std::string cuda_version() {
#if defined(MMLAB_TORCH_CUDA)
  int version = 0;  // 1000 * major + 10 * minor
  if (cudaRuntimeGetVersion(&version) != cudaSuccess || version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
#else
  return "";
#endif
}

/// Causal attention over (B, H, Lq, hd) queries and (B, H, Lk, hd) keys/values, where query i sits
/// at absolute position (Lk - Lq + i): the new tokens of a KV-cached decode attend to all earlier
/// ones. 2.x uses the fused kernel (flash attention on the GPU); 1.13 has none in C++.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v) {
  const int64_t Lq = q.size(2), Lk = k.size(2);
#if MMLAB_TORCH_AT_LEAST(2, 0)
  if (Lq == Lk) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  }
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // (B, H, Lq, Lk)
  auto opts = torch::TensorOptions().device(q.device()).dtype(torch::kLong);
  auto qpos = torch::arange(Lk - Lq, Lk, opts).unsqueeze(1);  // (Lq, 1)
  auto kpos = torch::arange(0, Lk, opts).unsqueeze(0);        // (1, Lk)
  scores = scores.masked_fill(kpos > qpos, -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
}

/// Turns bf16/fp16 autocast on or off for CUDA ops in this thread.
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if MMLAB_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
  if (!enabled) at::autocast::clear_cache();
}

/// Whether CUDA autocast is on in this thread, and the dtype it casts matmul inputs to.
inline bool cuda_autocast_enabled() {
#if MMLAB_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

inline at::ScalarType cuda_autocast_dtype() {
#if MMLAB_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

/// CUDA autocast on for the scope when `enabled` (off again on exit, also when an exception
/// leaves the scope).
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enabled, at::ScalarType dtype = at::kBFloat16) : enabled_(enabled) {
    if (enabled_) set_cuda_autocast(true, dtype);
  }
  ~CudaAutocast() {
    if (enabled_) set_cuda_autocast(false, at::kBFloat16);
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
};

/// While alive, CUDA autocast is suspended: ops run in the dtypes of their inputs. Used for the
/// router, norms and the selective scan, which the paper keeps in fp32.
class NoAutocast {
 public:
  NoAutocast() : guard_(c10::DispatchKey::AutocastCUDA) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

inline bool cuda_built() {
#if defined(MMLAB_TORCH_CUDA)
  return true;
#else
  return false;
#endif
}

/// Peak bytes allocated on a CUDA device since the last reset; 0 on a CPU build.
inline int64_t cuda_peak_allocated(int device) {
#if defined(MMLAB_TORCH_CUDA)
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  return stats.allocated_bytes[0].peak;
#else
  (void)device;
  return 0;
#endif
}

/// The GPU's marketing name ("NVIDIA H200"); "GPU" on a CPU build.
inline std::string cuda_device_name(int device) {
#if defined(MMLAB_TORCH_CUDA)
  return at::cuda::getDeviceProperties(device)->name;
#else
  (void)device;
  return "GPU";
#endif
}

/// The CUDA stream LibTorch queues work on in this thread, as an opaque cudaStream_t; kernels
/// launch on it so they order with LibTorch's own ops. nullptr (the legacy default stream, which
/// is also LibTorch's default) on a build whose LibTorch has no CUDA.
inline void* current_cuda_stream() {
#if defined(MMLAB_TORCH_CUDA)
  return at::cuda::getCurrentCUDAStream().stream();
#else
  return nullptr;
#endif
}

inline void cuda_reset_peak(int device) {
#if defined(MMLAB_TORCH_CUDA)
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
#else
  (void)device;
#endif
}

}  // namespace mmlab::compat

// c10d (data-parallel training), for the files that define MMLAB_COMPAT_C10D before including
// this header: the other files need none of its headers.
#if defined(MMLAB_COMPAT_C10D)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(MMLAB_HAVE_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(MMLAB_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace mmlab::compat {

/// What collectives are called on: the ProcessGroup itself in 1.13, its Backend from 2.0 on.
#if MMLAB_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

#if defined(MMLAB_HAVE_GLOO)
/// A Gloo group over `store`: on the network interface `interface` when given (GLOO_SOCKET_IFNAME),
/// else on the address of `hostname`, else on the address of this host's name.
inline c10::intrusive_ptr<CollectiveBackend> make_gloo_backend(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout, const std::string& interface, const std::string& hostname) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(
      !interface.empty()  ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
      : !hostname.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(hostname)
                          : c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}
#endif

/// Whether this build can make NCCL process groups (a CUDA LibTorch 2.x with NCCL's header).
inline bool nccl_built() {
#if defined(MMLAB_HAVE_NCCL)
  return true;
#else
  return false;
#endif
}

#if defined(MMLAB_HAVE_NCCL)
inline c10::intrusive_ptr<CollectiveBackend> make_nccl_backend(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}
#endif

}  // namespace mmlab::compat
#endif  // MMLAB_COMPAT_C10D
