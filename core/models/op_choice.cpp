// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/op_choice.h"

#include <algorithm>

#include "core/config/layer_pattern.h"
#include "core/config/param_count.h"
#include "core/models/language_model.h"
#include "core/models/mamba_layer.h"
#include "core/ops/attention_ops.h"
#include "core/ops/lm_head_ops.h"
#include "core/ops/mamba_ops.h"
#include "core/ops/moe_ops.h"
#include "core/ops/norm_ops.h"
#include "core/ops/op_catalog.h"
#include "core/util/error.h"

namespace mmlab {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

bool is_builtin(const std::string& impl) {
  return impl == "auto" || impl == "reference";
}

template <class Registry, class Args>
void check_call(const Registry& registry, const OpsConfig& c, const RunConfig& run,
                torch::DeviceType device, const Args& args) {
  const std::string& impl = c.for_op(registry.op());
  if (is_builtin(impl)) return;
  const std::string why = registry.why_not(impl, device, args);
  if (why.empty()) return;
  throw UserError("train.ops of run " + run.name + ": op " + registry.op() +
                  " cannot use implementation '" + impl + "' (" + why +
                  "); choose \"auto\" or \"reference\" for it.");
}

}  // namespace

void check_ops_choice(const RunConfig& run) {
  const OpsConfig& c = run.train.ops;
  const std::vector<std::string>& ops_names = ops::op_names();
  for (const auto& [op, impl] : c.per_op) {
    if (std::find(ops_names.begin(), ops_names.end(), op) == ops_names.end()) {
      throw UserError("train.ops of run " + run.name + " names op '" + op +
                      "', which does not exist; the ops are " + join(ops_names) + ".");
    }
  }
  for (const std::string& op : ops_names) {
    const std::string& impl = c.for_op(op);
    if (is_builtin(impl)) continue;
    std::vector<std::string> impls = ops::implementation_names(op);
    if (std::find(impls.begin(), impls.end(), impl) == impls.end()) {
      throw UserError("train.ops of run " + run.name + ": op " + op + " has no implementation '" +
                      impl + "' in this build; choose auto, " + join(impls) + ".");
    }
  }
  const bool cuda = run.train.device.rfind("cuda", 0) == 0;
  const torch::DeviceType device = cuda ? torch::kCUDA : torch::kCPU;
  const torch::ScalarType act =
      cuda && run.train.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  {
    // The head's call as the trainer makes it: the final norm's fp32 output, autocast's dtype.
    const auto meta = torch::TensorOptions().device(torch::kMeta);
    const int64_t tokens = int64_t(run.train.batch_size) * run.train.seq_len;
    ops::LmHeadLossArgs head;
    head.h = torch::empty({tokens, run.model.d_model}, meta.dtype(torch::kFloat));
    head.weight =
        torch::empty({expected_vocab_size(run), run.model.d_model}, meta.dtype(torch::kFloat));
    head.targets = torch::empty({tokens}, meta.dtype(torch::kLong));
    head.compute_dtype = act;
    for (bool needs_grad : {true, false}) {
      head.needs_grad = needs_grad;
      check_call(ops::lm_head_loss_registry(), c, run, device, head);
    }
  }
  {
    // The blocks' norms and the final one as the model calls them: the fp32 residual stream in,
    // the matmuls' dtype out (fp32 before a router).
    const auto meta = torch::TensorOptions().device(torch::kMeta).dtype(torch::kFloat);
    const int64_t tokens = int64_t(run.train.batch_size) * run.train.seq_len;
    ops::NormArgs norm;
    norm.x = torch::empty({tokens, run.model.d_model}, meta);
    norm.weight = torch::empty({run.model.d_model}, meta);
    norm.rms = run.model.norm == "rmsnorm";
    if (!norm.rms) norm.bias = torch::empty({run.model.d_model}, meta);
    for (torch::ScalarType out : {act, torch::kFloat}) {
      for (bool needs_grad : {true, false}) {
        norm.out_dtype = out;
        norm.needs_grad = needs_grad;
        check_call(ops::norm_registry(), c, run, device, norm);
      }
    }
  }
  {
    // The MoE op's implementations differ by device only.
    ops::SwitchMoeArgs moe;
    check_call(ops::switch_moe_registry(), c, run, device, moe);
  }
  const std::vector<LayerSpec> layers = expand_layers(run.model);
  if (std::any_of(layers.begin(), layers.end(),
                  [](const LayerSpec& s) { return s.kind == LayerKind::kAttention; })) {
    // The qkv projection's output as the attention layer views it, in autocast's dtype.
    const auto meta = torch::TensorOptions().device(torch::kMeta).dtype(act);
    ops::AttentionHeadsArgs heads;
    heads.qkv = torch::empty(
        {run.train.batch_size, run.train.seq_len, 3, run.model.n_head(), run.model.head_dim}, meta);
    for (bool needs_grad : {true, false}) {
      heads.needs_grad = needs_grad;
      check_call(ops::attention_heads_registry(), c, run, device, heads);
    }
  }
  for (const LayerSpec& spec : layers) {
    if (spec.kind != LayerKind::kMamba && spec.kind != LayerKind::kParallelMambaMoe) continue;
    const MambaLayerOptions options = mamba_layer_options(run.model, spec);
    for (bool needs_grad : {true, false}) {  // a training step, then an evaluation
      MambaForwardOpArgs args = MambaLayerImpl::forward_op_args(options, run.train.batch_size,
                                                                run.train.seq_len, act, needs_grad);
      check_call(ops::causal_conv1d_registry(), c, run, device, args.conv);
      check_call(ops::selective_scan_registry(), c, run, device, args.scan);
      check_call(ops::mamba_inner_registry(), c, run, device, args.inner);
    }
  }
}

std::string describe_ops(const std::map<std::string, std::string>& used) {
  std::string s;
  for (const auto& [op, impl] : used) s += (s.empty() ? "" : ", ") + op + "=" + impl;
  return s;
}

}  // namespace mmlab
