// SPDX-License-Identifier: GPL-3.0-or-later
// Validate-and-bench for the LM head loss (kernels/src/lm_head_loss_op.cpp) and its row kernel
// (kernels/src/cross_entropy.cu):
//   1. the row kernel against LibTorch's math at vocabularies that reach each of its
//      instantiations and the streaming fallback, both dtypes, both kernels, garbage in the
//      padding columns, out-of-range targets and grad_scale 0;
//   2. ops::lm_head_loss "cuda" against "reference" at a training shape (loss, d h, d weight,
//      bf16 compute dtype), both timed forward + backward;
//   3. the row kernel alone on one (R, row_stride) bf16 buffer, register-resident against the
//      streaming kernel, restored from a copy before each (untimed) call.
//
// Kernel versions:
//   v1: streaming, 512 threads a row: online (max, sum of exp) per thread, then the row re-read
//      and rewritten as its gradient. 6.25 ms for 65,536 GPT-2 rows in bf16 in a training
//      step's profile on an H200 (~2.1 TB/s): pass 2 re-read from HBM.
//   v2 (in src/): register-resident: the row read once into registers (the longest rows partly
//      into shared memory), written once; v1 kept for rows too long for it. GPT-2's bf16 rows
//      take 512 threads x (7 vectors in registers + 6 in shared memory), two rows an SM. Timed
//      by a stand-alone harness on an H200 (not this program): 65,536 such rows 3.22 ms, v1
//      5.72 ms, a device-to-device copy of the same bytes 3.09 ms.
//
// Usage: lm_head_dev [N D V]   (default 65536 512 50257; N tokens of width D over V words)
#include <cuda_runtime.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/ops/lm_head_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/dev/bench_support.h"
#include "kernels/src/cross_entropy.h"
#include "kernels/src/tensor_glue.h"

namespace {

using namespace mmlab;
using kernels::dev::check_close;
using kernels::dev::dtype_name;
using kernels::dev::make_event;
using kernels::dev::print_timing;
using kernels::dev::time_ms;

/// Runs the row kernel in place on `logits` (R, row_stride); the losses (R) it wrote.
torch::Tensor rows(torch::Tensor& logits, int64_t vocab, const torch::Tensor& targets,
                   float grad_scale, bool streaming) {
  auto losses = torch::empty({logits.size(0)}, logits.options().dtype(torch::kFloat));  // (R)
  kernels::CrossEntropyRowsParams p;
  p.logits = logits.data_ptr();
  p.type = kernels::element_type(logits);
  p.rows = logits.size(0);
  p.vocab = vocab;
  p.row_stride = logits.size(1);
  p.targets = targets.data_ptr<int64_t>();
  p.losses = losses.data_ptr<float>();
  p.grad_scale = grad_scale;
  p.force_streaming = streaming;
  kernels::check_launch(kernels::cross_entropy_rows(p, compat::current_cuda_stream()),
                        "lm_head_dev");
  return losses;
}

/// Part 1 at one (vocab, dtype, kernel); true when the checks pass.
bool check_rows(int64_t V, torch::Dtype dtype, bool streaming) {
  const int64_t R = 64, Vp = kernels::padded_vocab(V);
  std::printf("rows %s V=%lld %s\n", dtype_name(dtype), static_cast<long long>(V),
              streaming ? "streaming" : "default dispatch");
  auto o = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(V);
  // Padding columns hold values that would win the max if they were read.
  auto x = torch::full({R, Vp}, 1000.f, o);  // (R, Vp)
  x.narrow(1, 0, V).copy_(torch::randn({R, V}, o) * 3);
  x = x.to(dtype);
  auto targets = torch::randint(0, V, {R}, o.dtype(torch::kLong));  // (R)
  // Out-of-range targets (NaN loss, no -1 in the gradient) and both ends of the row.
  targets[1].fill_(-1);
  targets[2].fill_(V);
  targets[3].fill_(V - 1);
  targets[4].fill_(0);

  auto xf = x.narrow(1, 0, V).to(torch::kFloat);  // (R, V)
  const auto valid = targets.ge(0).logical_and(targets.lt(V));
  auto lse = torch::logsumexp(xf, 1);
  auto x_t = xf.gather(1, targets.clamp(0, V - 1).unsqueeze(1)).squeeze(1);
  auto want_loss = torch::where(valid, lse - x_t, torch::full_like(lse, NAN));
  const float scale = 0.5f;
  auto onehot = torch::zeros({R, V}, o);
  onehot.scatter_(1, targets.clamp(0, V - 1).unsqueeze(1), valid.to(torch::kFloat).unsqueeze(1));
  auto want_grad = torch::zeros({R, Vp}, o);  // (R, Vp), 0 in the padding
  want_grad.narrow(1, 0, V).copy_((torch::softmax(xf, 1) - onehot) * scale);

  auto g = x.clone();
  auto loss = rows(g, V, targets, scale, streaming);
  auto untouched = x.clone();
  auto loss_only = rows(untouched, V, targets, 0.f, streaming);
  const bool bf16 = dtype == torch::kBFloat16;
  bool ok = true;
  const bool nan_where_invalid = loss.isnan().equal(valid.logical_not());
  std::printf("  check %-28s %s\n", "NaN loss iff target invalid",
              nan_where_invalid ? "ok" : "FAILED");
  ok &= nan_where_invalid;
  ok &= check_close("loss", loss.masked_select(valid), want_loss.masked_select(valid), 1e-5, 1e-5);
  ok &= check_close("gradient", g, want_grad.to(dtype), bf16 ? 1e-2 : 1e-5, 1e-6);
  const bool padding_zero = g.narrow(1, V, Vp - V).eq(0).all().item<bool>();
  std::printf("  check %-28s %s\n", "padding gradient exactly 0", padding_zero ? "ok" : "FAILED");
  ok &= padding_zero;
  const bool same_loss = loss_only.masked_select(valid).equal(loss.masked_select(valid));
  const bool left = untouched.equal(x);
  std::printf("  check %-28s %s\n", "grad_scale 0: logits kept",
              left && same_loss ? "ok" : "FAILED");
  ok &= left && same_loss;
  return ok;
}

struct Grads {
  torch::Tensor loss, dh, dw;
};

/// One forward + backward of implementation `impl` as the op harness runs it: the args filled
/// directly (bf16 matmuls), tokens x loss differentiated so the gradients are O(1).
Grads head(const char* impl, const torch::Tensor& h0, const torch::Tensor& w0,
           const torch::Tensor& targets) {
  const auto fn = ops::lm_head_loss_registry().find(impl)->fn;
  ops::LmHeadLossArgs a;
  a.h = h0.detach().requires_grad_();
  a.weight = w0.detach().requires_grad_();
  a.targets = targets;
  a.compute_dtype = torch::kBFloat16;
  a.needs_grad = true;
  auto loss = fn(a);
  (loss * static_cast<double>(h0.size(0))).backward();
  return {loss.detach(), a.h.grad(), a.weight.grad()};
}

/// Part 2; true when the checks pass.
bool run_head(int64_t N, int64_t D, int64_t V) {
  std::printf("lm_head_loss bf16 compute  N=%lld D=%lld V=%lld\n", static_cast<long long>(N),
              static_cast<long long>(D), static_cast<long long>(V));
  auto o = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(0);
  auto h = torch::randn({N, D}, o);                                      // (N, D) fp32
  auto w = torch::randn({V, D}, o) / std::sqrt(static_cast<double>(D));  // (V, D) fp32
  auto targets = torch::randint(0, V, {N}, o.dtype(torch::kLong));       // (N)
  bool ok = true;
  {
    const Grads k = head("cuda", h, w, targets);
    const Grads r = head("reference", h, w, targets);
    // Both round the logits and their gradient to bf16 for the GEMMs (cuBLAS may pick other
    // kernels for the padded weight); the gradients' tolerance scales with their largest entry
    // (d h is ~1 / sqrt(D) here, so a fixed one would hold it to nothing).
    auto scaled = [&](const char* what, const torch::Tensor& got, const torch::Tensor& want) {
      const double scale = want.abs().max().item<double>();
      return check_close(what, got, want, 2e-2, 2e-2 * scale);
    };
    ok &= check_close("loss", k.loss, r.loss, 1e-3, 1e-3);
    ok &= scaled("d h", k.dh, r.dh);
    ok &= scaled("d weight", k.dw, r.dw);
  }
  // What the cuda path moves over the (N, Vp) bf16 logits: the GEMM's write, the row kernel's
  // read and write, the two backward GEMMs' reads (the GEMMs' own time dominates the row).
  const double logits_bytes = 2.0 * N * kernels::padded_vocab(V);
  const double ref_ms = time_ms([&] { head("reference", h, w, targets); }, 1, 5);
  const double cuda_ms = time_ms([&] { head("cuda", h, w, targets); }, 1, 5);
  print_timing("forward + backward (bytes: 5 logits passes)", ref_ms, cuda_ms, 5 * logits_bytes);
  return ok;
}

/// Mean milliseconds of the row kernel on `work`, restored from `source` before each call.
double time_rows(const torch::Tensor& source, torch::Tensor& work, int64_t V,
                 const torch::Tensor& targets, bool streaming, int iters = 10) {
  auto stream = static_cast<cudaStream_t>(compat::current_cuda_stream());
  auto start = make_event(), stop = make_event();
  double total = 0;
  for (int i = -1; i < iters; ++i) {  // i = -1 warms up
    work.copy_(source);
    cudaEventRecord(start.get(), stream);
    rows(work, V, targets, 1.f / static_cast<float>(work.size(0)), streaming);
    cudaEventRecord(stop.get(), stream);
    cudaEventSynchronize(stop.get());
    float ms = 0;
    cudaEventElapsedTime(&ms, start.get(), stop.get());
    if (i >= 0) total += ms;
  }
  return total / iters;
}

/// Part 3; true when the two kernels agree.
bool bench_rows(int64_t R, int64_t V) {
  const int64_t Vp = kernels::padded_vocab(V);
  std::printf("row kernel alone bf16  R=%lld V=%lld row_stride=%lld\n", static_cast<long long>(R),
              static_cast<long long>(V), static_cast<long long>(Vp));
  auto o = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(1);
  auto source = torch::zeros({R, Vp}, o.dtype(torch::kBFloat16));  // (R, Vp), 0 in the padding
  source.narrow(1, 0, V).copy_(torch::randn({R, V}, o.dtype(torch::kBFloat16)) * 2);
  auto targets = torch::randint(0, V, {R}, o.dtype(torch::kLong));  // (R)
  auto work = torch::empty_like(source);

  // Agreement first, on the buffer the timing uses; the gradients on the first rows only, since
  // comparing all of them in fp32 takes ~50 GB at the default size.
  auto g_res = source.clone();
  auto l_res = rows(g_res, V, targets, 1.f, false);
  auto g_str = source.clone();
  auto l_str = rows(g_str, V, targets, 1.f, true);
  const int64_t some = std::min<int64_t>(R, 4096);
  bool ok = check_close("loss resident vs streaming", l_res, l_str, 1e-5, 1e-5);
  ok &= check_close("gradient resident vs streaming", g_res.narrow(0, 0, some),
                    g_str.narrow(0, 0, some), 1e-2, 1e-6);
  g_res = g_str = torch::Tensor();

  const double bytes = 2.0 * R * Vp * 2;  // the row read once and written once, bf16
  const double res_ms = time_rows(source, work, V, targets, false);
  const double str_ms = time_rows(source, work, V, targets, true);
  std::printf("  %-22s %8.3f ms  %7.0f GB/s\n", "streaming (v1)", str_ms,
              bytes / (str_ms * 1e-3) / 1e9);
  std::printf("  %-22s %8.3f ms  %7.0f GB/s  speedup %5.2fx\n", "register-resident", res_ms,
              bytes / (res_ms * 1e-3) / 1e9, str_ms / res_ms);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  return mmlab::kernels::dev::run_program(
      argc, argv, "lm_head_dev", "lm_head_dev [N D V]", {65536, 512, 50257}, [](auto sizes) {
        const auto [N, D, V] = sizes;
        torch::NoGradGuard no_grad;
        bool ok = true;
        // Every instantiation. bf16: 128 x 1 (5 .. 1,000 columns), 128 x 2 (2,000), 128 x 4
        // (4,000), 256 x 4 (8,000), 512 x 4 (16,000), 512 x 8 (24,000, 32,000), 512 x (7 + 6)
        // (50,257), 1024 x (11 + 2) (70,000), streaming (110,000, 120,000). fp32: 128 x 1 (5,
        // 257), 128 x 2 (1,000), ... 512 x 8 (16,000), 1024 x 7 (24,000), 1024 x (11 + 2)
        // (32,000, 50,257), streaming (70,000 and up).
        for (int64_t v :
             {5, 257, 1000, 2000, 4000, 8000, 16000, 24000, 32000, 50257, 70000, 110000, 120000}) {
          for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
            for (bool streaming : {false, true}) ok &= check_rows(v, dtype, streaming);
          }
        }
        {
          torch::AutoGradMode grad(true);
          ok &= run_head(N, D, V);
        }
        ok &= bench_rows(N, V);
        return ok;
      });
}
