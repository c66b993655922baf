// SPDX-License-Identifier: GPL-3.0-or-later
// The fused Mamba-1 selective scan on CUDA: the launch parameters shared by the kernels
// (selective_scan.cu, no torch headers) and their glue (selective_scan_op.cpp, no CUDA headers).
//
// Shapes: B batch, L length, Di d_inner, N d_state.
//   delta' = softplus(delta + delta_bias) (or delta + delta_bias without softplus)
//   h_t    = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t          (per channel d and state n)
//   y_t    = (C_t . h_t + D u_t) * silu(z_t)
// All arithmetic and the state are fp32 whatever the storage dtype.
#pragma once

#include <cstdint>

namespace mmlab::kernels {

enum class ScanDtype { kFloat32, kBFloat16 };

struct SelectiveScanParams {
  int batch = 0, dim = 0, seqlen = 0, dstate = 0;  // B, Di, L, N
  bool delta_softplus = false;
  // Tiles between two carries: the forward's and the backward's must be the same.
  int tiles_per_chunk = 1;

  // (B, Di, L) tensors in the input dtype: element strides, L stride 1.
  const void* u = nullptr;
  int64_t u_batch_stride = 0, u_dim_stride = 0;
  const void* delta = nullptr;
  int64_t delta_batch_stride = 0, delta_dim_stride = 0;
  const void* z = nullptr;  // optional
  int64_t z_batch_stride = 0, z_dim_stride = 0;

  // (B, N, L) contiguous, in the weight dtype.
  const void* Bm = nullptr;
  const void* Cm = nullptr;

  const float* A = nullptr;           // (Di, N) contiguous
  const float* D = nullptr;           // (Di)    optional
  const float* delta_bias = nullptr;  // (Di)    optional

  // Forward outputs.
  void* y = nullptr;  // (B, Di, L) input dtype, L stride 1
  int64_t y_batch_stride = 0, y_dim_stride = 0;
  float* last_state = nullptr;  // (B, Di, N) contiguous; optional
  float* carries = nullptr;     // (B, n_chunks, N, Di): the state at the end of each chunk
                                // of selective_scan_chunk_length() steps; optional

  // Backward: the gradient of y, and the gradients (du, ddelta contiguous (B, Di, L) in the
  // input dtype, dz likewise with its own batch/channel strides; the rest fp32 accumulators the
  // caller zero-fills: dB, dC (B, N, L), dA (Di, N), dD, ddelta_bias (Di); dz/dD/ddelta_bias only
  // when z/D/delta_bias are given).
  const void* dout = nullptr;
  const float* dlast_state =
      nullptr;  // (B, Di, N) contiguous; optional: the gradient of last_state
  int64_t dout_batch_stride = 0, dout_dim_stride = 0;
  void* du = nullptr;
  void* ddelta = nullptr;
  void* dz = nullptr;
  int64_t dz_batch_stride = 0, dz_dim_stride = 0;
  float* dA = nullptr;
  float* dB = nullptr;
  float* dC = nullptr;
  float* dD = nullptr;
  float* ddelta_bias = nullptr;
};

/// The largest d_state the kernels take.
constexpr int kSelectiveScanMaxDstate = 64;

/// Tiles between two stored carry states (1 to kSelectiveScanMaxTilesPerChunk). A carry per tile
/// spares the backward its recomputation pass (each chunk's forward before its reverse) for 4x
/// the carry memory of one per 4 tiles: at B 256, Di 1024, L 256, N 16 bf16 on an H200 that
/// memory is 537 MB per layer, and kernels/dev/scan_dev times both.
constexpr int kSelectiveScanTilesPerChunk = 1;
constexpr int kSelectiveScanMaxTilesPerChunk = 8;

/// Steps between two stored carry states for this d_state (the backward recomputes one chunk of
/// the forward from each); n_chunks = ceil(L / this).
int selective_scan_chunk_length(int dstate, int tiles_per_chunk);

/// Launch on `stream` (a cudaStream_t); throw std::runtime_error when a launch fails.
/// `input` is the dtype of u/delta/z/y, `weight` the dtype of B and C.
void selective_scan_forward_cuda(const SelectiveScanParams& p, ScanDtype input, ScanDtype weight,
                                 void* stream);
/// Needs `carries` from a forward with the same inputs.
void selective_scan_backward_cuda(const SelectiveScanParams& p, ScanDtype input, ScanDtype weight,
                                  void* stream);

}  // namespace mmlab::kernels
