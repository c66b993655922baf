// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/models/language_model.h"

#include <stdexcept>

#include "core/models/attention.h"
#include "core/models/init.h"
#include "core/models/mamba_layer.h"
#include "core/ops/lm_head_ops.h"
#include "core/ops/precision.h"
#include "core/util/error.h"

namespace mmlab {

namespace nn = torch::nn;

namespace {

SwitchMoeOptions moe_options(const ModelConfig& c, int64_t d_in, int64_t d_out) {
  return SwitchMoeOptions(d_in, d_out, c.resolved_d_expert(), c.n_expert)
      .capacity_factor(c.capacity_factor)
      .aux_loss_weight(c.aux_loss_weight);
}

}  // namespace

MambaLayerOptions mamba_layer_options(const ModelConfig& c, const LayerSpec& s) {
  return MambaLayerOptions(c.d_model)
      .d_state(c.d_state)
      .d_conv(c.d_conv)
      .expand(c.expand)
      .dt_rank(c.resolved_dt_rank())
      .dt_min(c.dt_min)
      .dt_max(c.dt_max)
      .dt_init_floor(c.dt_init_floor)
      .conv_moe(s.conv_moe)
      .gate_moe(s.gate_moe)
      .out_moe(s.out_moe)
      .moe(moe_options(c, c.d_model, c.d_model));
}

ParallelMambaMoeImpl::ParallelMambaMoeImpl(std::shared_ptr<MixerImpl> mamba_layer,
                                           SwitchMoe moe_layer)
    : mamba(register_module("mamba", std::move(mamba_layer))),
      moe(register_module("moe", std::move(moe_layer))) {}

torch::Tensor ParallelMambaMoeImpl::forward(const torch::Tensor& x) {
  return mamba->forward(x) + moe->forward(x);
}

torch::Tensor ParallelMambaMoeImpl::decode(const torch::Tensor& x, LayerCache& cache) {
  return mamba->decode(x, cache) + moe->decode(x, cache);
}

void ParallelMambaMoeImpl::collect_moe(std::vector<SwitchMoeImpl*>& out) {
  mamba->collect_moe(out);
  out.push_back(moe.get());
}

ResidualBlockImpl::ResidualBlockImpl(Norm n, std::shared_ptr<MixerImpl> m)
    : norm(register_module("norm", std::move(n))), mixer(register_module("mixer", std::move(m))) {}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& h) {
  // The normed input in the dtype the mixer's matmuls read (bf16 under autocast, which the
  // matmuls would round it to anyway), so the norm writes it once and no cast follows.
  const auto normed_dtype = mixer->reads_input_in_fp32() ? h.scalar_type() : matmul_dtype(h);
  return h + mixer->forward(norm->forward_to(h, normed_dtype));
}

torch::Tensor ResidualBlockImpl::decode(const torch::Tensor& h, LayerCache& cache) {
  return h + mixer->decode(norm(h), cache);
}

std::shared_ptr<MixerImpl> make_mixer(const LayerSpec& s, const ModelConfig& c) {
  switch (s.kind) {
    case LayerKind::kAttention:
      return std::make_shared<AttentionImpl>(
          AttentionOptions(c.d_model).head_dim(c.head_dim).rope_theta(c.rope_theta));
    case LayerKind::kFfn:
      return std::make_shared<FeedForwardImpl>(c.d_model, c.resolved_d_ff());
    case LayerKind::kMoe:
      return std::make_shared<SwitchMoeImpl>(moe_options(c, c.d_model, c.d_model));
    case LayerKind::kMamba:
      return std::make_shared<MambaLayerImpl>(mamba_layer_options(c, s));
    case LayerKind::kParallelMambaMoe:
      return std::make_shared<ParallelMambaMoeImpl>(
          std::make_shared<MambaLayerImpl>(mamba_layer_options(c, s)),
          SwitchMoe(moe_options(c, c.d_model, c.d_model)));
  }
  // parse_pattern accepts only tokens with a case above: reaching here is a bug, not bad input.
  throw std::logic_error("make_mixer: layer token '" + s.token + "' has no implementation");
}

LanguageModelImpl::LanguageModelImpl(const ModelConfig& c)
    : config(c), layer_specs(expand_layers(c)) {
  if (c.vocab_size <= 0) {
    throw UserError("The model has no vocabulary size.",
                    "Set model.vocab_size or let the tokenizer set it.");
  }
  embedding = register_module("embedding", nn::Embedding(c.vocab_size, c.d_model));
  init_truncated_normal_(embedding->weight, 1.0);
  layers = register_module("layers", nn::ModuleList());
  for (const LayerSpec& s : layer_specs) {
    layers->push_back(ResidualBlock(Norm(c.d_model, c.norm, c.norm_eps), make_mixer(s, c)));
  }
  if (c.final_norm) norm_f = register_module("norm_f", Norm(c.d_model, c.norm, c.norm_eps));
  if (!c.tie_embeddings) {
    lm_head = register_module("lm_head",
                              nn::Linear(nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
    init_truncated_normal_(lm_head->weight, static_cast<double>(c.d_model));
  }
}

torch::Tensor LanguageModelImpl::head_weight() const {
  return lm_head ? lm_head->weight : embedding->weight;
}

torch::Tensor LanguageModelImpl::head(const torch::Tensor& normed) {
  return torch::matmul(normed, head_weight().to(normed.scalar_type()).t());  // (B, L, V)
}

LmHidden LanguageModelImpl::forward_hidden(const torch::Tensor& ids) {
  auto h = embedding(ids);  // (B, L, D)
  for (const auto& layer : *layers) h = layer->as<ResidualBlockImpl>()->forward(h);
  LmHidden out;
  // The head reads it only through matmuls.
  out.h = norm_f ? norm_f->forward_to(h, matmul_dtype(h)) : h;
  out.aux_loss = torch::zeros({}, at_least_fp32(out.h).options());
  for (SwitchMoeImpl* moe : moe_layers()) out.aux_loss = out.aux_loss + moe->last_stats().aux_loss;
  return out;
}

LmOutput LanguageModelImpl::forward(const torch::Tensor& ids) {
  LmHidden hidden = forward_hidden(ids);
  return {head(hidden.h), hidden.aux_loss};
}

torch::Tensor LanguageModelImpl::next_token_loss(const LmHidden& hidden,
                                                 const torch::Tensor& targets) {
  ops::LmHeadLossArgs a;
  a.h = hidden.h.reshape({-1, hidden.h.size(-1)});  // (B*L, D)
  a.weight = head_weight();
  a.targets = targets.reshape({-1});
  return ops::lm_head_loss(a);
}

torch::Tensor LanguageModelImpl::decode(const torch::Tensor& ids, std::vector<LayerCache>& caches) {
  caches.resize(layers->size());
  auto h = embedding(ids);
  for (size_t i = 0; i < layers->size(); ++i) {
    h = layers[i]->as<ResidualBlockImpl>()->decode(h, caches[i]);
  }
  return head(norm_f ? norm_f(h) : h);
}

std::vector<SwitchMoeImpl*> LanguageModelImpl::moe_layers() {
  std::vector<SwitchMoeImpl*> out;
  for (const auto& layer : *layers) layer->as<ResidualBlockImpl>()->mixer->collect_moe(out);
  return out;
}

int64_t count_tensor_params(nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace mmlab
