// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/config.h"

#include <cmath>

#include "core/config/config_parse.h"
#include "core/config/experiment.h"
#include "core/config/layer_pattern.h"
#include "core/util/error.h"

namespace mmlab {

using config_detail::JsonReader;
using nlohmann::json;

std::string ModelConfig::resolved_pattern() const {
  return pattern.empty() ? family_pattern(family) : pattern;
}

int64_t TrainConfig::resolved_steps() const {
  if (steps > 0) return steps;
  return tokens_per_step() > 0 ? tokens / tokens_per_step() : 0;
}

json to_json(const ModelConfig& c) {
  return json{{"family", c.family},
              {"pattern", c.resolved_pattern()},
              {"n_block", c.n_block},
              {"d_model", c.d_model},
              {"vocab_size", c.vocab_size},
              {"d_state", c.d_state},
              {"d_conv", c.d_conv},
              {"expand", c.expand},
              {"dt_rank", c.resolved_dt_rank()},
              {"dt_min", c.dt_min},
              {"dt_max", c.dt_max},
              {"dt_init_floor", c.dt_init_floor},
              {"head_dim", c.head_dim},
              {"rope_theta", c.rope_theta},
              {"d_ff", c.resolved_d_ff()},
              {"n_expert", c.n_expert},
              {"d_expert", c.resolved_d_expert()},
              {"capacity_factor", c.capacity_factor},
              {"aux_loss_weight", c.aux_loss_weight},
              {"norm", c.norm},
              {"norm_eps", c.norm_eps},
              {"final_norm", c.final_norm},
              {"tie_embeddings", c.tie_embeddings}};
}

json to_json(const OpsConfig& c) {
  if (c.per_op.empty()) return c.all;
  json j = json::object();
  for (const auto& [op, impl] : c.per_op) j[op] = impl;
  return j;
}

json to_json(const TrainConfig& c) {
  return json{{"steps", c.steps},
              {"tokens", c.tokens},
              {"batch_size", c.batch_size},
              {"seq_len", c.seq_len},
              {"grad_accum", c.grad_accum},
              {"lr", c.lr},
              {"warmup_frac", c.warmup_frac},
              {"final_lr_frac", c.final_lr_frac},
              {"weight_decay", c.weight_decay},
              {"no_decay_groups", c.no_decay_groups},
              {"beta1", c.beta1},
              {"beta2", c.beta2},
              {"adam_eps", c.adam_eps},
              {"grad_clip", c.grad_clip},
              {"ema_alpha", c.ema_alpha},
              {"eval_every", c.eval_every},
              {"eval_batches", c.eval_batches},
              {"checkpoint_every", c.checkpoint_every},
              {"keep_checkpoints", c.keep_checkpoints},
              {"log_every", c.log_every},
              {"device", c.device},
              {"dtype", c.dtype},
              {"threads", c.threads},
              {"ops", to_json(c.ops)}};
}

json to_json(const DataConfig& c) {
  return json{{"source", c.source},
              {"format", c.format},
              {"split", c.split},
              {"text_field", c.text_field},
              {"tokenizer", c.tokenizer},
              {"tokenizer_path", c.tokenizer_path},
              {"tokenizer_vocab", c.tokenizer_vocab},
              {"val_fraction", c.val_fraction},
              {"sampling", c.sampling},
              {"cache", c.cache}};
}

json to_json(const RunConfig& c) {
  return json{{"name", c.name},
              {"seed", c.seed},
              {"model", to_json(c.model)},
              {"train", to_json(c.train)},
              {"data", to_json(c.data)}};
}

namespace config_detail {

namespace {

void positive(JsonReader& r, const char* key, int64_t v) {
  if (v <= 0) r.problem(key, "must be > 0, got " + std::to_string(v) + ".");
}

void one_of(JsonReader& r, const char* key, const std::string& v,
            std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  r.problem(key, "must be one of " + list + ", got \"" + v + "\".");
}

// train.ops: a name, or an object of op name -> name. Which ops and implementations exist is
// known only to a build with the ops (core/models/op_choice.h checks that before a run).
void read_ops(JsonReader& r, OpsConfig& c) {
  const json* v = r.section("ops");
  if (!v) return;
  const char* form =
      "must be an implementation name (\"auto\", \"reference\", \"cuda\", ...) or an object "
      "naming one per op, e.g. {\"selective_scan\": \"cuda\"}";
  if (v->is_string()) {
    c.all = v->get<std::string>();
    c.per_op.clear();
    if (c.all.empty()) r.problem("ops", std::string(form) + ", got \"\".");
    return;
  }
  if (!v->is_object()) {
    r.problem("ops", std::string(form) + ", got " + v->dump() + ".");
    return;
  }
  c.all = "auto";
  c.per_op.clear();
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string() || it.value().get<std::string>().empty()) {
      r.problem("ops." + it.key(),
                "must be an implementation name, got " + it.value().dump() + ".");
      continue;
    }
    c.per_op[it.key()] = it.value().get<std::string>();
  }
}

}  // namespace

void read_model(const json& j, const std::string& path, ModelConfig& c,
                std::vector<std::string>* problems) {
  if (!j.is_object()) {
    problems->push_back(path + ": must be an object.");
    return;
  }
  JsonReader r(j, path, problems);
  r.read("family", c.family);
  r.read("pattern", c.pattern);
  r.read("n_block", c.n_block);
  r.read("d_model", c.d_model);
  r.read("vocab_size", c.vocab_size);
  r.read("d_state", c.d_state);
  r.read("d_conv", c.d_conv);
  r.read("expand", c.expand);
  r.read("dt_rank", c.dt_rank);
  r.read("dt_min", c.dt_min);
  r.read("dt_max", c.dt_max);
  r.read("dt_init_floor", c.dt_init_floor);
  r.read("head_dim", c.head_dim);
  r.read("rope_theta", c.rope_theta);
  r.read("d_ff", c.d_ff);
  r.read("n_expert", c.n_expert);
  r.read("d_expert", c.d_expert);
  r.read("capacity_factor", c.capacity_factor);
  r.read("aux_loss_weight", c.aux_loss_weight);
  r.read("norm", c.norm);
  r.read("norm_eps", c.norm_eps);
  r.read("final_norm", c.final_norm);
  r.read("tie_embeddings", c.tie_embeddings);
  r.reject_unknown_keys();

  positive(r, "n_block", c.n_block);
  positive(r, "d_model", c.d_model);
  positive(r, "d_state", c.d_state);
  positive(r, "d_conv", c.d_conv);
  positive(r, "expand", c.expand);
  positive(r, "head_dim", c.head_dim);
  positive(r, "n_expert", c.n_expert);
  if (c.vocab_size < 0) r.problem("vocab_size", "must be >= 0 (0 = from the tokenizer).");
  if (c.dt_rank < 0) r.problem("dt_rank", "must be >= 0 (0 = ceil(d_model / 16)).");
  if (c.d_ff < 0) r.problem("d_ff", "must be >= 0 (0 = 4 * d_model).");
  if (c.d_expert < 0) r.problem("d_expert", "must be >= 0 (0 = 4 * d_model).");
  if (!(c.dt_min > 0 && c.dt_min <= c.dt_max)) {
    r.problem("dt_min", "must satisfy 0 < dt_min <= dt_max.");
  }
  if (!(c.capacity_factor > 0)) r.problem("capacity_factor", "must be > 0.");
  if (c.aux_loss_weight < 0) r.problem("aux_loss_weight", "must be >= 0.");
  if (!(c.norm_eps > 0)) r.problem("norm_eps", "must be > 0.");
  one_of(r, "norm", c.norm, {"layernorm", "rmsnorm"});
  try {
    std::vector<LayerSpec> unit = parse_pattern(c.resolved_pattern());
    for (const LayerSpec& s : unit) {
      if (s.kind == LayerKind::kAttention && c.head_dim > 0 && c.d_model % c.head_dim != 0) {
        r.problem("d_model", "must be a multiple of head_dim (" + std::to_string(c.head_dim) +
                                 ") for attention layers, got " + std::to_string(c.d_model) + ".");
        break;
      }
      if (s.kind == LayerKind::kAttention && c.head_dim % 2 != 0) {
        r.problem("head_dim", "must be even for rotary embeddings.");
        break;
      }
    }
  } catch (const UserError& e) {
    r.problem(c.pattern.empty() ? "family" : "pattern", e.what());
  }
}

void read_train(const json& j, const std::string& path, TrainConfig& c,
                std::vector<std::string>* problems) {
  if (!j.is_object()) {
    problems->push_back(path + ": must be an object.");
    return;
  }
  JsonReader r(j, path, problems);
  r.read("steps", c.steps);
  r.read("tokens", c.tokens);
  r.read("batch_size", c.batch_size);
  r.read("seq_len", c.seq_len);
  r.read("grad_accum", c.grad_accum);
  r.read("lr", c.lr);
  r.read("warmup_frac", c.warmup_frac);
  r.read("final_lr_frac", c.final_lr_frac);
  r.read("weight_decay", c.weight_decay);
  r.read("no_decay_groups", c.no_decay_groups);
  r.read("beta1", c.beta1);
  r.read("beta2", c.beta2);
  r.read("adam_eps", c.adam_eps);
  r.read("grad_clip", c.grad_clip);
  r.read("ema_alpha", c.ema_alpha);
  r.read("eval_every", c.eval_every);
  r.read("eval_batches", c.eval_batches);
  r.read("checkpoint_every", c.checkpoint_every);
  r.read("keep_checkpoints", c.keep_checkpoints);
  r.read("log_every", c.log_every);
  r.read("device", c.device);
  r.read("dtype", c.dtype);
  r.read("threads", c.threads);
  read_ops(r, c.ops);
  r.reject_unknown_keys();

  positive(r, "batch_size", c.batch_size);
  positive(r, "seq_len", c.seq_len);
  positive(r, "grad_accum", c.grad_accum);
  positive(r, "eval_batches", c.eval_batches);
  positive(r, "keep_checkpoints", c.keep_checkpoints);
  positive(r, "log_every", c.log_every);
  if (c.steps < 0) r.problem("steps", "must be >= 0.");
  if (c.tokens < 0) r.problem("tokens", "must be >= 0.");
  if (c.steps > 0 && c.tokens > 0) {
    r.problem("tokens", "give either steps or tokens as the budget, not both.");
  }
  if (c.batch_size > 0 && c.seq_len > 0 && c.grad_accum > 0 && c.resolved_steps() <= 0) {
    r.problem("steps", "the budget is zero steps; set steps > 0 or tokens >= one step's " +
                           std::to_string(c.tokens_per_step()) + " tokens.");
  }
  if (!(c.lr > 0)) r.problem("lr", "must be > 0.");
  if (!(c.warmup_frac >= 0 && c.warmup_frac <= 1)) {
    r.problem("warmup_frac", "must be between 0 and 1 (the fraction of steps spent warming up).");
  }
  if (!(c.final_lr_frac >= 0 && c.final_lr_frac <= 1)) {
    r.problem("final_lr_frac", "must be between 0 and 1.");
  }
  if (c.weight_decay < 0) r.problem("weight_decay", "must be >= 0.");
  if (!(c.beta1 >= 0 && c.beta1 < 1)) r.problem("beta1", "must be in [0, 1).");
  if (!(c.beta2 >= 0 && c.beta2 < 1)) r.problem("beta2", "must be in [0, 1).");
  if (!(c.adam_eps > 0)) r.problem("adam_eps", "must be > 0.");
  if (c.grad_clip < 0) r.problem("grad_clip", "must be >= 0 (0 = no clipping).");
  if (!(c.ema_alpha > 0 && c.ema_alpha <= 1)) r.problem("ema_alpha", "must be in (0, 1].");
  if (c.eval_every < 0) r.problem("eval_every", "must be >= 0 (0 = only at the end).");
  if (c.checkpoint_every < 0) r.problem("checkpoint_every", "must be >= 0 (0 = only at the end).");
  if (c.threads < 0) r.problem("threads", "must be >= 0 (0 = all cores).");
  one_of(r, "dtype", c.dtype, {"bf16", "fp32"});
  if (!(c.device == "cpu" || c.device == "cuda" || c.device.rfind("cuda:", 0) == 0)) {
    r.problem("device", "must be cpu, cuda or cuda:N, got \"" + c.device + "\".");
  }
}

void read_data(const json& j, const std::string& path, DataConfig& c,
               std::vector<std::string>* problems) {
  if (!j.is_object()) {
    problems->push_back(path + ": must be an object.");
    return;
  }
  JsonReader r(j, path, problems);
  r.read("source", c.source);
  r.read("format", c.format);
  r.read("split", c.split);
  r.read("text_field", c.text_field);
  r.read("tokenizer", c.tokenizer);
  r.read("tokenizer_path", c.tokenizer_path);
  r.read("tokenizer_vocab", c.tokenizer_vocab);
  r.read("val_fraction", c.val_fraction);
  r.read("sampling", c.sampling);
  r.read("cache", c.cache);
  r.reject_unknown_keys();
  // These are the rules the corpus is prepared by (core/data): what passes here trains.
  if (c.source.empty()) {
    r.problem("source", "must name a corpus (\"default\", \"large\" or a file or folder).");
  }
  one_of(r, "format", c.format, {"auto", "text", "jsonl", "bin"});
  one_of(r, "split", c.split, {"file", "blank_lines"});
  one_of(r, "tokenizer", c.tokenizer, {"byte", "gpt2", "sentencepiece"});
  one_of(r, "sampling", c.sampling, {"random", "contiguous"});
  if (c.text_field.empty()) {
    r.problem("text_field", "must name the JSON member holding the text, e.g. \"text\".");
  }
  if (c.tokenizer == "sentencepiece" && c.tokenizer_path.empty() &&
      !(c.tokenizer_vocab >= 64 && c.tokenizer_vocab <= 1'000'000)) {
    r.problem("tokenizer_vocab", "must be between 64 and 1000000, got " +
                                     std::to_string(c.tokenizer_vocab) + " (e.g. 8192).");
  }
  if (!(c.val_fraction >= 0 && c.val_fraction <= 0.5)) {
    r.problem("val_fraction", "must be between 0 and 0.5 (e.g. 0.05; 0 = no validation), got " +
                                  json(c.val_fraction).dump() + ".");
  }
}

}  // namespace config_detail

RunConfig run_config_from_json(const json& j) {
  std::vector<std::string> problems;
  RunConfig c;
  config_detail::JsonReader r(j, "$", &problems);
  r.read("name", c.name);
  r.read("seed", c.seed);
  auto section = [&](const char* key) -> json {
    const json* v = r.section(key);
    return v ? *v : json::object();
  };
  config_detail::read_model(section("model"), "$.model", c.model, &problems);
  config_detail::read_train(section("train"), "$.train", c.train, &problems);
  config_detail::read_data(section("data"), "$.data", c.data, &problems);
  r.reject_unknown_keys();
  if (!problems.empty()) throw ConfigError("the run config", problems);
  return c;
}

}  // namespace mmlab
