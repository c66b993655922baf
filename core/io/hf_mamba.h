// SPDX-License-Identifier: GPL-3.0-or-later
// Export to and import from the directory layout Hugging Face `transformers` loads as
// `MambaForCausalLM`: model.safetensors + config.json (docs/export.md has the name table and
// every config field). Only a pure Mamba stack with RMSNorm and a final norm has that layout.
//
// Shapes: D hidden_size, Di intermediate_size = expand*D, N state_size, R time_step_rank,
// K conv_kernel, V vocab_size.
//   backbone.embeddings.weight (V, D)    backbone.layers.{i}.mixer.in_proj.weight (2Di, D)
//   backbone.norm_f.weight (D)           lm_head.weight (V, D), left out when tied
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/config.h"
#include "core/models/language_model.h"

namespace mmlab {

struct HfExportOptions {
  /// The tokenizer's end-of-text id, written as pad/bos/eos_token_id (generation only); -1 = 0,
  /// transformers' default.
  int64_t eot_id = -1;
};

/// Throws a UserError naming the settings to change when `config` is not a model
/// MambaForCausalLM can hold (a layer other than plain Mamba, LayerNorm, no final norm).
void check_hf_mamba_exportable(const ModelConfig& config);

/// The config.json `transformers.MambaConfig` reads for a model of `config` (every field written
/// explicitly: MambaConfig's defaults are mamba-2.8b's, not ours).
nlohmann::json hf_mamba_config(const ModelConfig& config, const HfExportOptions& options = {});

/// The Hugging Face name of one of our parameter names ("layers.3.mixer.A_log" ->
/// "backbone.layers.3.mixer.A_log").
std::string hf_mamba_name(const std::string& mmlab_name);

/// Writes `dir`/model.safetensors (F32, metadata format=pt and our config as "mmlab_config") and
/// `dir`/config.json, each atomically; creates `dir`. A model that is not pure Mamba with RMSNorm
/// and a final norm is a UserError before anything is written.
void export_hf_mamba(LanguageModel& model, const std::filesystem::path& dir,
                     const HfExportOptions& options = {});

/// Builds a model from a directory in that layout (ours or one `save_pretrained` wrote): the
/// config comes from config.json (our embedded config is used when it describes the same model,
/// so family, pattern and init settings survive a round trip) and every weight from
/// model.safetensors, converted to F32. Missing, mis-shaped or unexpected tensors, a config
/// mmlab cannot represent (use_bias true, another activation) are UserErrors naming the file.
LanguageModel import_hf_mamba(const std::filesystem::path& dir);

/// Writes the reference file scripts/check-hf-export.py compares against: "input_ids" (I64,
/// (B, L)) and "logits" (F32, (B, L, V)) of `model` (eval mode, on the CPU) on `ids`.
void write_reference_logits(LanguageModel& model, const torch::Tensor& ids,
                            const std::filesystem::path& path);

}  // namespace mmlab
