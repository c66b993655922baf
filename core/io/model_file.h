// SPDX-License-Identifier: GPL-3.0-or-later
// A model of any family as one safetensors file: the weights under our own parameter names
// ("embedding.weight", "layers.0.mixer.in_proj.weight", …, as named_parameters() gives them) and
// the ModelConfig as JSON in the header's metadata ("mmlab_config"), so the file alone rebuilds
// the model. Layout and format: docs/export.md.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/io/safetensors.h"
#include "core/models/language_model.h"

namespace mmlab {

/// The metadata key holding to_json(ModelConfig).dump().
inline constexpr const char* kMmlabConfigKey = "mmlab_config";

/// Writes every parameter (moved to the CPU, in its own dtype) and the config, atomically.
void save_model_safetensors(LanguageModel& model, const std::filesystem::path& path);

/// Rebuilds the model from the embedded config and loads its weights (on the CPU). A file
/// without an mmlab config, or whose tensors do not match that config, is a UserError naming it.
LanguageModel load_model_safetensors(const std::filesystem::path& path);

/// Loads a file into an already built model; a file written for another model config is a
/// UserError naming both configs' family and the file.
void load_model_safetensors_into(LanguageModel& model, const std::filesystem::path& path);

/// The config embedded in a safetensors file by save_model_safetensors (or export_hf_mamba).
ModelConfig model_config_from_safetensors(const SafetensorsFile& file);

/// Parses a ModelConfig JSON object (as to_json wrote it), validated; a problem is a UserError
/// naming `what` and the JSON path.
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& what);

/// Copies `file`'s tensors into `model`'s parameters, the tensor for parameter p being
/// `file.at(rename(p))`. Every parameter must be present with its shape; dtypes are converted.
/// Tensors the model has no parameter for are a UserError (they belong to another model).
void copy_tensors_into(LanguageModel& model, const SafetensorsFile& file,
                       const std::function<std::string(const std::string&)>& rename,
                       const std::vector<std::string>& ignorable = {});

}  // namespace mmlab
