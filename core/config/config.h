// SPDX-License-Identifier: GPL-3.0-or-later
// Run configuration: model, training, data. One vocabulary everywhere: a field name here is the
// JSON key, the CLI flag and the SQLite column. Validated once, at load (see experiment.h).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/ops_config.h"

namespace mmlab {

// Each struct's fields are declared once, with their rules and meaning, in config_fields.h; the
// initializers here are the defaults.

/// What a model is: a layer pattern (data, not code) and the sizes of its blocks.
struct ModelConfig {
  std::string family = "moe-mamba";
  std::string pattern;
  int n_block = 2;
  int d_model = 128;
  int vocab_size = 0;

  // Mamba (defaults of mamba_ssm's mamba_simple.py).
  int d_state = 16;  ///< N
  int d_conv = 4;
  int expand = 2;   ///< Di = expand * d_model
  int dt_rank = 0;  ///< R; 0 = ceil(d_model / 16)
  double dt_min = 0.001;
  double dt_max = 0.1;
  double dt_init_floor = 1e-4;

  // Attention.
  int head_dim = 64;
  double rope_theta = 10000.0;

  // Dense FFN.
  int d_ff = 0;  ///< 0 = 4 * d_model

  // Switch MoE.
  int n_expert = 8;  ///< X
  int d_expert = 0;  ///< 0 = 4 * d_model
  double capacity_factor = 1.0;
  double aux_loss_weight = 0.01;

  // Norms and head.
  std::string norm = "layernorm";
  double norm_eps = 1e-5;
  bool final_norm = false;
  bool tie_embeddings = false;

  int d_inner() const { return expand * d_model; }
  int resolved_dt_rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
  int resolved_d_ff() const { return d_ff > 0 ? d_ff : 4 * d_model; }
  int resolved_d_expert() const { return d_expert > 0 ? d_expert : 4 * d_model; }
  int n_head() const { return d_model / head_dim; }
  /// The pattern actually used: `pattern`, or the family's default.
  std::string resolved_pattern() const;
};

/// How a model is trained.
struct TrainConfig {
  int64_t steps = 200;
  int64_t tokens = 0;
  int batch_size = 8;
  int seq_len = 128;
  int grad_accum = 1;
  double lr = 1e-3;
  double warmup_frac = 0.01;
  double final_lr_frac = 0.1;
  double weight_decay = 0.1;
  bool no_decay_groups = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  double grad_clip = 0.5;
  double ema_alpha = 0.001;
  int eval_every = 50;
  int eval_batches = 8;
  int checkpoint_every = 100;
  int keep_checkpoints = 2;
  int log_every = 1;
  std::string device = "cpu";
  std::string dtype = "bf16";
  int threads = 0;
  OpsConfig ops;

  int64_t resolved_steps() const;
  int64_t tokens_per_step() const { return int64_t(batch_size) * seq_len * grad_accum; }
};

/// Where tokens come from: the corpus, how its files become documents, the tokenizer, the
/// validation split and the sampling of training windows (docs/data.md).
struct DataConfig {
  std::string source = "default";
  std::string format = "auto";
  std::string split = "file";
  std::string text_field = "text";
  std::string tokenizer = "gpt2";
  std::string tokenizer_path;
  int tokenizer_vocab = 8192;
  double val_fraction = 0.05;
  std::string sampling = "random";
  bool cache = true;
};

/// One run of an experiment: everything needed to reproduce it.
struct RunConfig {
  std::string name;
  int64_t seed = 0;
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
};

nlohmann::json to_json(const ModelConfig& c);
nlohmann::json to_json(const OpsConfig& c);
nlohmann::json to_json(const TrainConfig& c);
nlohmann::json to_json(const DataConfig& c);
nlohmann::json to_json(const RunConfig& c);

/// Parses a fully written run config (as stored in the database or a checkpoint), validating it.
/// Throws ConfigError naming the JSON path.
RunConfig run_config_from_json(const nlohmann::json& j);

}  // namespace mmlab
