// SPDX-License-Identifier: GPL-3.0-or-later
// The layer pattern language: which sub-layer sits at layer i is data (see ModelConfig::pattern).
#pragma once

#include <string>
#include <vector>

#include "core/config/config.h"

namespace mmlab {

enum class LayerKind {
  kAttention,         ///< A: causal multi-head attention with RoPE
  kFfn,               ///< F: dense FFN
  kMoe,               ///< E: Switch MoE (top-1)
  kMamba,             ///< M: Mamba-1 layer, optionally with inner MoE projections
  kParallelMambaMoe,  ///< (M|E): Mamba and MoE read one normed input, outputs summed
};

struct LayerSpec {
  LayerKind kind = LayerKind::kMamba;
  // Mamba projections replaced by a Switch MoE (the paper's inner-MoE variants).
  bool conv_moe = false;  ///< the x half of in_proj ("conv projection")
  bool gate_moe = false;  ///< the z half of in_proj ("gate projection")
  bool out_moe = false;   ///< out_proj ("output projection")
  std::string token;      ///< as written in the pattern, for messages and tables

  bool has_moe() const {
    return kind == LayerKind::kMoe || kind == LayerKind::kParallelMambaMoe || conv_moe ||
           gate_moe || out_moe;
  }
};

/// The default pattern of a family; throws UserError listing the families for an unknown one.
std::string family_pattern(const std::string& family);

/// Known family names, in display order.
const std::vector<std::string>& known_families();

/// Parses one unit of a pattern. An unknown token throws UserError listing the valid ones.
std::vector<LayerSpec> parse_pattern(const std::string& pattern);

/// The whole stack: resolved pattern repeated n_block times.
std::vector<LayerSpec> expand_layers(const ModelConfig& config);

}  // namespace mmlab
