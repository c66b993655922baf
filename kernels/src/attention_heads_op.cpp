// SPDX-License-Identifier: GPL-3.0-or-later
// The "cuda" implementation of ops::attention_heads: the kernels of kernels/src/attention_heads.h
// in an autograd Function. The forward keeps only the (L, hd/2) cos and sin tables; q, k and v
// are written token-major ((B, L, H, hd), the layout the projection gives them and the fused
// attention reads) and handed out as (B, H, L, hd) views.
//
// Shapes: B batch, L length, H heads, hd head dim.
#include <torch/torch.h>

#include <climits>
#include <string>

#include "core/ops/attention_ops.h"
#include "core/ops/torch_compat.h"
#include "kernels/src/attention_heads.h"
#include "kernels/src/registrations.h"
#include "kernels/src/tensor_glue.h"

namespace mmlab::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

std::string attention_heads_why_not(const ops::AttentionHeadsArgs& a) {
  const std::initializer_list<CheckedInput> inputs = {{"qkv", a.qkv, 5}};
  if (!a.qkv.defined()) return "qkv missing";
  if (auto why = dims_why_not(inputs); !why.empty()) return why;
  if (auto why = dtype_device_why_not(inputs); !why.empty()) return why;
  if (a.qkv.size(2) != 3) return "qkv not (B, L, 3, H, hd)";
  const int64_t hd = a.qkv.size(4);
  if (hd % 2 != 0) return "odd head dim " + std::to_string(hd);
  if (hd > 1 && a.qkv.stride(4) != 1) return "qkv not contiguous along the head dim";
  if (a.qkv.size(0) * a.qkv.size(1) > INT_MAX) return "more than 2^31 tokens";  // a block each
  return "";
}

struct Tables {
  torch::Tensor cos, sin;  // (L, hd/2) fp32
};

Tables tables_for(const torch::Tensor& qkv, int64_t offset, double theta) {
  auto [c, s] = ops::rope_cos_sin(qkv.size(1), qkv.size(4), offset, theta, qkv.device());
  return {c.contiguous(), s.contiguous()};
}

AttentionHeadsParams sizes_of(const torch::Tensor& qkv, const Tables& t) {
  AttentionHeadsParams p;
  p.batch = qkv.size(0);
  p.length = qkv.size(1);
  p.heads = qkv.size(3);
  p.head_dim = qkv.size(4);
  p.type = element_type(qkv);
  p.cos = t.cos.data_ptr<float>();
  p.sin = t.sin.data_ptr<float>();
  return p;
}

/// q, k, v token-major: (B, L, H, hd) each.
tensor_list run_forward(const torch::Tensor& qkv, const Tables& t) {
  c10::DeviceGuard guard(qkv.device());
  AttentionHeadsParams p = sizes_of(qkv, t);
  p.qkv = qkv.data_ptr();
  for (int d = 0; d < 4; ++d) p.qkv_stride[d] = qkv.stride(d);
  tensor_list out;
  for (int part = 0; part < 3; ++part) {
    out.push_back(torch::empty({p.batch, p.length, p.heads, p.head_dim}, qkv.options()));
    p.out[part] = out.back().data_ptr();
  }
  check_launch(attention_heads_forward(p, compat::current_cuda_stream()), "attention_heads");
  return out;
}

class AttentionHeadsFunction : public torch::autograd::Function<AttentionHeadsFunction> {
 public:
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& qkv, int64_t offset,
                             double theta) {
    const Tables t = tables_for(qkv, offset, theta);
    ctx->save_for_backward({t.cos, t.sin});
    ctx->saved_data["sizes"] = qkv.sizes();
    return run_forward(qkv, t);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tables t{saved[0], saved[1]};
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const tensor_list none = {torch::Tensor(), torch::Tensor(), torch::Tensor()};
    torch::Tensor like;
    for (const auto& g : grads) {
      if (g.defined()) like = g;
    }
    if (!like.defined()) return none;
    c10::DeviceGuard guard(like.device());
    auto dqkv = torch::empty(sizes, like.options());  // (B, L, 3, H, hd)
    AttentionHeadsParams p = sizes_of(dqkv, t);
    tensor_list kept;  // keeps converted gradients alive until the launch
    for (int part = 0; part < 3; ++part) {
      if (!grads[part].defined()) continue;
      auto g = grads[part].to(dqkv.scalar_type());  // (B, L, H, hd)
      if (g.size(3) > 1 && g.stride(3) != 1) g = g.contiguous();
      kept.push_back(g);
      p.grad[part] = g.data_ptr();
      for (int d = 0; d < 3; ++d) p.grad_stride[part][d] = g.stride(d);
    }
    p.dqkv = dqkv.data_ptr();
    check_launch(attention_heads_backward(p, compat::current_cuda_stream()), "attention_heads");
    return {dqkv, torch::Tensor(), torch::Tensor()};
  }
};

ops::AttentionHeads attention_heads_cuda(const ops::AttentionHeadsArgs& a) {
  tensor_list qkv;
  if (a.needs_grad) {
    qkv = AttentionHeadsFunction::apply(a.qkv, a.offset, a.theta);
  } else {
    qkv = run_forward(a.qkv, tables_for(a.qkv, a.offset, a.theta));
  }
  // (B, L, H, hd) -> (B, H, L, hd) views
  return {qkv[0].transpose(1, 2), qkv[1].transpose(1, 2), qkv[2].transpose(1, 2)};
}

}  // namespace

void register_attention_heads_cuda() {
  ops::attention_heads_registry().add(
      {"cuda", torch::kCUDA, attention_heads_why_not, attention_heads_cuda});
}

}  // namespace mmlab::kernels
