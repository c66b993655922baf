// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/io/model_file.h"

#include <set>

#include "core/config/experiment.h"
#include "core/util/error.h"

namespace mmlab {

namespace fs = std::filesystem;
using nlohmann::json;

ModelConfig model_config_from_json(const json& j, const std::string& what) {
  if (!j.is_object()) {
    throw UserError(what + " holds a model config that is not a JSON object.",
                    "Write the file again with mmlab.");
  }
  try {
    // The run-config reader validates the model section; the other sections take defaults.
    return run_config_from_json(json{{"model", j}}).model;
  } catch (const ConfigError& e) {
    std::string list;
    for (const auto& p : e.problems()) list += (list.empty() ? "" : "; ") + p;
    throw UserError(what + " holds an invalid model config (" + list + ").",
                    "It was written by another mmlab version or edited; export the model again.");
  }
}

ModelConfig model_config_from_safetensors(const SafetensorsFile& file) {
  const auto it = file.metadata.find(kMmlabConfigKey);
  if (it == file.metadata.end()) {
    throw UserError(
        "The file " + file.path.string() + " has no mmlab model config in its metadata.",
        "Give a file written by `mmlab export-model --format safetensors`; for a "
        "Hugging Face directory use --format hf.");
  }
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::exception&) {
    throw UserError("The mmlab config in " + file.path.string() + " is not valid JSON.",
                    "Export the model again.");
  }
  return model_config_from_json(j, "The file " + file.path.string());
}

void copy_tensors_into(LanguageModel& model, const SafetensorsFile& file,
                       const std::function<std::string(const std::string&)>& rename,
                       const std::vector<std::string>& ignorable) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used(ignorable.begin(), ignorable.end());
  for (auto& p : model->named_parameters()) {
    const std::string name = rename(p.key());
    if (!file.contains(name)) {
      throw UserError("The file " + file.path.string() + " lacks the tensor " + name + ".",
                      "It was written for another model; export it again.");
    }
    const torch::Tensor& t = file.at(name);
    if (t.sizes() != p.value().sizes()) {
      throw UserError("The file " + file.path.string() + " holds " + name + " with shape " +
                          c10::str(t.sizes()) + ", the model expects " +
                          c10::str(p.value().sizes()) + ".",
                      "It was written for another model config; export it again.");
    }
    if (!t.is_floating_point()) {
      throw UserError("The file " + file.path.string() + " holds " + name + " as integers.",
                      "Weights must be floating point (F32, BF16, F16 or F64).");
    }
    p.value().copy_(t);  // converts the dtype (BF16/F16/F64 -> the model's)
    used.insert(name);
  }
  std::string extra;
  int n_extra = 0;
  for (const auto& [name, tensor] : file.tensors) {
    (void)tensor;
    if (used.count(name)) continue;
    if (n_extra++ < 4) extra += (extra.empty() ? "" : ", ") + name;
  }
  if (n_extra > 0) {
    throw UserError("The file " + file.path.string() + " holds " + std::to_string(n_extra) +
                        " tensor(s) the model does not have (" + extra + ").",
                    "It was written for another model config; export it again.");
  }
}

void save_model_safetensors(LanguageModel& model, const fs::path& path) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
  // "format": "pt" lets Python's safetensors.torch and transformers read the file too.
  save_safetensors(path, tensors,
                   {{"format", "pt"}, {kMmlabConfigKey, to_json(model->config).dump()}});
}

LanguageModel load_model_safetensors(const fs::path& path) {
  SafetensorsFile file = load_safetensors(path);
  LanguageModel model(model_config_from_safetensors(file));
  copy_tensors_into(model, file, [](const std::string& n) { return n; });
  return model;
}

void load_model_safetensors_into(LanguageModel& model, const fs::path& path) {
  SafetensorsFile file = load_safetensors(path);
  const ModelConfig stored = model_config_from_safetensors(file);
  if (to_json(stored) != to_json(model->config)) {
    throw UserError("The file " + path.string() + " holds a model of another config (" +
                        stored.family + ", d_model " + std::to_string(stored.d_model) +
                        ", pattern \"" + stored.resolved_pattern() + "\" x " +
                        std::to_string(stored.n_block) + "; this model: " + model->config.family +
                        ", d_model " + std::to_string(model->config.d_model) + ", pattern \"" +
                        model->config.resolved_pattern() + "\" x " +
                        std::to_string(model->config.n_block) + ").",
                    "Load it with load_model_safetensors, which builds the model from the file.");
  }
  copy_tensors_into(model, file, [](const std::string& n) { return n; });
}

}  // namespace mmlab
