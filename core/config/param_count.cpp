// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/param_count.h"

#include "core/config/layer_pattern.h"
#include "core/config/vocabulary.h"

namespace mmlab {

namespace {

struct Count {
  int64_t total = 0;
  int64_t active = 0;
  void add_dense(int64_t n) {
    total += n;
    active += n;
  }
  void add(const Count& o) {
    total += o.total;
    active += o.active;
  }
};

// A Switch MoE from d_in to d_out: router d_in*X, experts Linear(d_in,de)->ReLU->Linear(de,d_out).
Count moe_count(int64_t d_in, int64_t d_out, const ModelConfig& c) {
  const int64_t X = c.n_expert, de = c.resolved_d_expert();
  const int64_t expert = d_in * de + de * d_out;
  Count n;
  n.total = d_in * X + X * expert;
  n.active = d_in * X + expert;
  return n;
}

int64_t norm_count(const ModelConfig& c) {
  return c.norm == "rmsnorm" ? c.d_model : 2 * int64_t(c.d_model);
}

Count mamba_count(const LayerSpec& s, const ModelConfig& c) {
  const int64_t d = c.d_model, Di = c.d_inner(), N = c.d_state, R = c.resolved_dt_rank();
  Count n;
  n.add(s.conv_moe ? moe_count(d, Di, c) : Count{d * Di, d * Di});
  n.add(s.gate_moe ? moe_count(d, Di, c) : Count{d * Di, d * Di});
  n.add_dense(Di * c.d_conv + Di);  // conv1d weight + bias
  n.add_dense(Di * (R + 2 * N));    // x_proj
  n.add_dense(R * Di + Di);         // dt_proj weight + bias
  n.add_dense(Di * N + Di);         // A_log, D
  n.add(s.out_moe ? moe_count(Di, d, c) : Count{Di * d, Di * d});
  return n;
}

}  // namespace

int expected_vocab_size(const RunConfig& r) {
  if (r.model.vocab_size > 0) return r.model.vocab_size;
  return expected_vocab_size(r.data.tokenizer, r.data.tokenizer_vocab);
}

ParamCounts count_params(const ModelConfig& c, int vocab_size) {
  const int64_t d = c.d_model;
  const int64_t V = vocab_size > 0 ? vocab_size : c.vocab_size;
  Count body;
  for (const LayerSpec& s : expand_layers(c)) {
    body.add_dense(norm_count(c));
    switch (s.kind) {
      case LayerKind::kAttention:
        body.add_dense(4 * d * d);  // qkv (3d*d) + out (d*d), no biases
        break;
      case LayerKind::kFfn: {
        const int64_t f = c.resolved_d_ff();
        body.add_dense(2 * d * f + f + d);
        break;
      }
      case LayerKind::kMoe:
        body.add(moe_count(d, d, c));
        break;
      case LayerKind::kMamba:
        body.add(mamba_count(s, c));
        break;
      case LayerKind::kParallelMambaMoe:
        body.add(mamba_count(s, c));
        body.add(moe_count(d, d, c));
        break;
    }
  }
  if (c.final_norm) body.add_dense(norm_count(c));
  const int64_t embed = V * d + (c.tie_embeddings ? 0 : d * V);
  ParamCounts out;
  out.nonembed = body.total;
  out.nonembed_active = body.active;
  out.total = body.total + embed;
  out.active = body.active + embed;
  return out;
}

}  // namespace mmlab
