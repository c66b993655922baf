// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/layer_pattern.h"

#include <sstream>

#include "core/util/error.h"

namespace mmlab {

namespace {

const char* kValidTokens =
    "valid tokens: A (attention), F (dense FFN), E (Switch MoE), M (Mamba), (M|E) (parallel "
    "Mamba+MoE), M[conv=E,gate=E,out=E] (Mamba with inner MoE projections)";

LayerSpec parse_inner_moe(const std::string& token) {
  // token = M[key=E,key=E]
  LayerSpec spec;
  spec.kind = LayerKind::kMamba;
  spec.token = token;
  std::string body = token.substr(2, token.size() - 3);
  std::stringstream ss(body);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (value != "E") {
      throw UserError("Layer token '" + token + "' sets " + key + " to '" + value + "'.",
                      "Only E (a Switch MoE) can replace a Mamba projection.");
    }
    if (key == "conv") {
      spec.conv_moe = true;
    } else if (key == "gate") {
      spec.gate_moe = true;
    } else if (key == "out") {
      spec.out_moe = true;
    } else {
      throw UserError("Layer token '" + token + "' names an unknown projection '" + key + "'.",
                      "Use conv, gate or out.");
    }
  }
  if (!spec.conv_moe && !spec.gate_moe && !spec.out_moe) {
    throw UserError("Layer token '" + token + "' replaces no projection.",
                    "Write e.g. M[conv=E] or M[gate=E,out=E].");
  }
  return spec;
}

}  // namespace

const std::vector<std::string>& known_families() {
  static const std::vector<std::string> families = {
      "moe-mamba",          "mamba",           "transformer-moe", "transformer",
      "parallel-moe-mamba", "inner-moe-mamba", "custom"};
  return families;
}

std::string family_pattern(const std::string& family) {
  if (family == "transformer") return "A F";
  if (family == "transformer-moe") return "A E";
  if (family == "mamba") return "M M";
  if (family == "moe-mamba") return "M E";
  if (family == "parallel-moe-mamba") return "(M|E)";
  if (family == "inner-moe-mamba") return "M[conv=E]";
  if (family == "custom") {
    throw UserError("The family 'custom' has no default layer pattern.",
                    "Set model.pattern, e.g. \"M E\".");
  }
  std::string list;
  for (const auto& f : known_families()) list += (list.empty() ? "" : ", ") + f;
  throw UserError("Unknown model family '" + family + "'.", "Known families: " + list + ".");
}

std::vector<LayerSpec> parse_pattern(const std::string& pattern) {
  std::vector<LayerSpec> layers;
  std::stringstream ss(pattern);
  std::string token;
  while (ss >> token) {
    LayerSpec spec;
    spec.token = token;
    if (token == "A") {
      spec.kind = LayerKind::kAttention;
    } else if (token == "F") {
      spec.kind = LayerKind::kFfn;
    } else if (token == "E") {
      spec.kind = LayerKind::kMoe;
    } else if (token == "M") {
      spec.kind = LayerKind::kMamba;
    } else if (token == "(M|E)" || token == "(M||E)" || token == "(M\u2016E)") {
      spec.kind = LayerKind::kParallelMambaMoe;
    } else if (token.size() > 3 && token.rfind("M[", 0) == 0 && token.back() == ']') {
      spec = parse_inner_moe(token);
    } else {
      throw UserError("Unknown layer token '" + token + "' in pattern '" + pattern + "'.",
                      std::string("The ") + kValidTokens + ".");
    }
    layers.push_back(spec);
  }
  if (layers.empty()) {
    throw UserError("The layer pattern is empty.", "Write e.g. \"M E\" (Mamba, then MoE).");
  }
  return layers;
}

std::vector<LayerSpec> expand_layers(const ModelConfig& config) {
  std::vector<LayerSpec> unit = parse_pattern(config.resolved_pattern());
  std::vector<LayerSpec> layers;
  layers.reserve(unit.size() * static_cast<size_t>(config.n_block));
  for (int b = 0; b < config.n_block; ++b) layers.insert(layers.end(), unit.begin(), unit.end());
  return layers;
}

}  // namespace mmlab
