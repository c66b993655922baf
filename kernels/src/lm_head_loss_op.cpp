// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementation of ops::lm_head_loss: chunks of tokens through
//   logits = h_c W^T (a GEMM into a row stride padded to 64 columns, which keeps cuBLAS on its
//   aligned kernels: with 50,257 columns it fell back to sm75 kernels at ~95 TFLOP/s),
//   cross_entropy_rows (loss per token, the logits overwritten by their gradient),
//   dh_c = G_c W, dW += G_c^T h_c,
// so the whole batch's logits never exist and the backward is two multiplications by the
// incoming scalar. The GEMMs are LibTorch's (cuBLAS); only the row kernel is ours.
//
// Shapes: N tokens, D d_model, V vocabulary, Vp = V rounded up to 64, c tokens per chunk.
#include <torch/torch.h>

#include <string>

#include "core/ops/lm_head_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/cross_entropy.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using ops::LmHeadLossArgs;

// One chunk's logits stay under this many bytes (~0.8 GB: 8,192 tokens of GPT-2's vocabulary).
constexpr int64_t kChunkBytes = int64_t(1) << 30;

std::string lm_head_loss_why_not(const LmHeadLossArgs& a) {
  for (const auto& why : {dim_why_not("h", a.h, 2), dim_why_not("weight", a.weight, 2),
                          dim_why_not("targets", a.targets, 1)}) {
    if (!why.empty()) return why;
  }
  for (const auto& why : {device_why_not("h", a.h), device_why_not("weight", a.weight),
                          device_why_not("targets", a.targets), dtype_why_not("h", a.h),
                          dtype_why_not("weight", a.weight)}) {
    if (!why.empty()) return why;
  }
  if (a.compute_dtype != torch::kFloat && a.compute_dtype != torch::kBFloat16) {
    return std::string("compute dtype ") + c10::toString(a.compute_dtype);
  }
  if (a.targets.scalar_type() != torch::kLong) {
    return std::string("targets dtype ") + c10::toString(a.targets.scalar_type());
  }
  if (a.h.size(1) != a.weight.size(1)) return "h and weight differ in width";
  if (a.h.size(0) != a.targets.size(0)) return "h and targets differ in length";
  if (a.h.size(0) == 0 || a.weight.size(0) == 0) return "empty input";
  return "";
}

struct HeadLoss {
  torch::Tensor loss;  // () fp32
  torch::Tensor dh;    // (N, D) compute dtype, d loss / d h; undefined without gradients
  torch::Tensor dw;    // (V, D) fp32, d loss / d W
};

HeadLoss head_loss(const torch::Tensor& h, const torch::Tensor& weight,
                   const torch::Tensor& targets, torch::ScalarType dtype, bool grads) {
  compat::NoAutocast explicit_dtypes;
  c10::DeviceGuard guard(h.device());
  const int64_t N = h.size(0), D = h.size(1), V = weight.size(0), Vp = padded_vocab(V);
  const auto opts = h.options().dtype(dtype);
  // Zero rows V..Vp-1: their logits are exactly 0 and their gradient rows stay 0.
  auto w = torch::zeros({Vp, D}, opts);  // (Vp, D)
  w.narrow(0, 0, V).copy_(weight);
  auto hc = h.to(dtype).contiguous();  // (N, D)
  const auto tgt = targets.contiguous();
  const int64_t elem = dtype == torch::kBFloat16 ? 2 : 4;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, kChunkBytes / (Vp * elem)));

  auto losses = torch::empty({N}, h.options().dtype(torch::kFloat));  // (N)
  HeadLoss out;
  torch::Tensor dw_padded;
  if (grads) {
    out.dh = torch::empty({N, D}, opts);
    dw_padded = torch::zeros({Vp, D}, h.options().dtype(torch::kFloat));  // (Vp, D)
  }
  for (int64_t start = 0; start < N; start += chunk) {
    const int64_t c = std::min(chunk, N - start);
    auto h_c = hc.narrow(0, start, c);    // (c, D)
    auto logits = torch::mm(h_c, w.t());  // (c, Vp)
    CrossEntropyRowsParams p;
    p.logits = logits.data_ptr();
    p.type = element_type(logits);
    p.rows = c;
    p.vocab = V;
    p.row_stride = Vp;
    p.targets = tgt.data_ptr<int64_t>() + start;
    p.losses = losses.data_ptr<float>() + start;
    p.grad_scale = grads ? 1.f / static_cast<float>(N) : 0.f;
    check_launch(cross_entropy_rows(p, compat::current_cuda_stream()), "lm_head_loss");
    if (!grads) continue;
    // logits now holds G_c = d loss / d logits of the chunk.
    auto dh_c = out.dh.narrow(0, start, c);
    torch::mm_out(dh_c, logits, w);              // (c, D)
    dw_padded.add_(torch::mm(logits.t(), h_c));  // (Vp, D)
  }
  out.loss = losses.sum() / static_cast<double>(N);
  if (grads) out.dw = dw_padded.narrow(0, 0, V);
  return out;
}

class LmHeadLossFunction : public torch::autograd::Function<LmHeadLossFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor h,
                               torch::Tensor weight, torch::Tensor targets,
                               torch::ScalarType compute_dtype) {
    HeadLoss r = head_loss(h, weight, targets, compute_dtype, /*grads=*/true);
    ctx->save_for_backward({r.dh, r.dw});
    ctx->saved_data["h_dtype"] = h.scalar_type();
    ctx->saved_data["weight_dtype"] = weight.scalar_type();
    return r.loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& g = grads[0];  // () d total / d loss
    auto dh = (saved[0].to(torch::kFloat) * g).to(ctx->saved_data["h_dtype"].toScalarType());
    auto dw = (saved[1] * g).to(ctx->saved_data["weight_dtype"].toScalarType());
    return {dh, dw, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor lm_head_loss_cuda(const LmHeadLossArgs& a) {
  if (!a.needs_grad) return head_loss(a.h, a.weight, a.targets, a.compute_dtype, false).loss;
  return LmHeadLossFunction::apply(a.h, a.weight, a.targets, a.compute_dtype);
}

}  // namespace

void register_lm_head_loss_cuda() {
  ops::lm_head_loss_registry().add({"cuda", torch::kCUDA, lm_head_loss_why_not, lm_head_loss_cuda});
}

}  // namespace mmlab::kernels
