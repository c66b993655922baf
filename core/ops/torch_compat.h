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
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

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

/// Work recorded once as a CUDA graph and replayed with one launch. On a LibTorch without CUDA
/// available() is false and capture() throws.
class CudaGraph {
 public:
  static bool available() { return cuda_built(); }

  /// Runs `warmup` and then records `record` (without running it) on a side stream of `device`;
  /// the current stream waits for both. Rethrows what `record` throws, with no graph kept.
  void capture(int device, const std::function<void()>& warmup,
               const std::function<void()>& record) {
#if defined(MMLAB_TORCH_CUDA)
    auto main = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device));
    auto side = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device));
    at::cuda::CUDAEvent ready;
    ready.record(main);
    ready.block(side);
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      // Autocast's cached weight casts would live outside the graph's memory and be freed when
      // the autocast scope ends; without the cache the casts are part of the graph.
      const bool cache = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);
      try {
        warmup();
        graph_ = std::make_unique<at::cuda::CUDAGraph>();
        graph_->capture_begin();
        try {
          record();
        } catch (...) {
          try {
            graph_->capture_end();
          } catch (...) {
          }
          throw;
        }
        graph_->capture_end();
      } catch (...) {
        graph_.reset();
        (void)cudaGetLastError();
        at::autocast::set_autocast_cache_enabled(cache);
        throw;
      }
      at::autocast::set_autocast_cache_enabled(cache);
    }
    at::cuda::CUDAEvent done;
    done.record(side);
    done.block(main);
#else
    (void)device;
    (void)warmup;
    (void)record;
    throw std::runtime_error("CUDA graphs need a LibTorch built with CUDA.");
#endif
  }

  /// Launches the recorded work on the current stream.
  void replay() {
#if defined(MMLAB_TORCH_CUDA)
    graph_->replay();
#endif
  }

 private:
#if defined(MMLAB_TORCH_CUDA)
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
#endif
};

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

/// The 2-norm of all of `tensors` together (norm of the per-tensor norms, as torch's
/// clip_grad_norm_ computes it); fused per dtype and device on 2.x.
inline torch::Tensor global_norm(const std::vector<torch::Tensor>& tensors) {
#if MMLAB_TORCH_AT_LEAST(2, 0)
  return at::linalg_vector_norm(at::stack(at::_foreach_norm(tensors, 2)), 2);
#else
  std::vector<torch::Tensor> norms;
  norms.reserve(tensors.size());
  for (const auto& t : tensors) norms.push_back(t.norm(2));
  return torch::stack(norms).norm(2);
#endif
}

/// tensors[i] *= factor (a scalar tensor on their device) without reading it; one fused launch
/// per dtype and device on 2.1+.
inline void scale_all_(std::vector<torch::Tensor>& tensors, const torch::Tensor& factor) {
#if MMLAB_TORCH_AT_LEAST(2, 1)
  at::_foreach_mul_(tensors, factor);
#else
  for (auto& t : tensors) t.mul_(factor);
#endif
}

/// Whether this LibTorch has the fused multi-tensor AdamW kernel (2.x, CUDA).
inline bool fused_adamw_available() {
#if MMLAB_TORCH_AT_LEAST(2, 0) && defined(MMLAB_TORCH_CUDA)
  return true;
#else
  return false;
#endif
}

/// One fused AdamW update of every tensor in `params` (decoupled weight decay, no amsgrad);
/// `steps` are float step counts on the device, incremented by the kernel. Only where
/// fused_adamw_available().
inline void fused_adamw_(const std::vector<torch::Tensor>& params,
                         const std::vector<torch::Tensor>& grads,
                         const std::vector<torch::Tensor>& exp_avgs,
                         const std::vector<torch::Tensor>& exp_avg_sqs,
                         const std::vector<torch::Tensor>& steps, double lr, double beta1,
                         double beta2, double weight_decay, double eps) {
#if MMLAB_TORCH_AT_LEAST(2, 0) && defined(MMLAB_TORCH_CUDA)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params, (void)grads, (void)exp_avgs, (void)exp_avg_sqs, (void)steps, (void)lr;
  (void)beta1, (void)beta2, (void)weight_decay, (void)eps;
  throw std::logic_error("fused_adamw_ called on a LibTorch without the fused AdamW kernel");
#endif
}

/// While alive, any LibTorch op that waits for the GPU (item(), nonzero(), a copy to the host...)
/// throws: how a test proves that a path never synchronises. Does nothing on a CPU build.
class CudaSyncIsError {
 public:
#if defined(MMLAB_TORCH_CUDA)
  CudaSyncIsError() : saved_(c10::cuda::warning_state().get_sync_debug_mode()) {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  }
  ~CudaSyncIsError() {
    c10::cuda::warning_state().set_sync_debug_mode(saved_);
  }

 private:
  c10::cuda::SyncDebugMode saved_;
#else
  CudaSyncIsError() = default;
#endif
 public:
  CudaSyncIsError(const CudaSyncIsError&) = delete;
  CudaSyncIsError& operator=(const CudaSyncIsError&) = delete;
};

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
