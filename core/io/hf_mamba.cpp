// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/io/hf_mamba.h"

#include <optional>
#include <set>

#include "core/config/layer_pattern.h"
#include "core/io/model_file.h"
#include "core/io/safetensors.h"
#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kModelFile = "model.safetensors";
const char* kConfigFile = "config.json";

/// The fields that decide the tensors and the arithmetic (the rest only matter for init).
const char* kStructuralKeys[] = {"vocab_size",        "hidden_size",        "state_size",
                                 "num_hidden_layers", "conv_kernel",        "expand",
                                 "time_step_rank",    "layer_norm_epsilon", "tie_word_embeddings"};

/// A config.json reader that names the file and the key in every complaint.
class HfConfigReader {
 public:
  HfConfigReader(const json& j, fs::path path) : j_(j), path_(std::move(path)) {}

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    const json* v = find(key);
    if (!v) return required(key, fallback);
    if (!v->is_number_integer()) wrong_type(key, "an integer");
    return v->get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) wrong_type(key, "a number");
    return v->get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) wrong_type(key, "true or false");
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) wrong_type(key, "a string");
    return v->get<std::string>();
  }
  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const {
    throw UserError(path_.string() + ": " + what, hint);
  }

 private:
  int64_t required(const char* key, std::optional<int64_t> fallback) const {
    if (fallback) return *fallback;
    fail(std::string("the key \"") + key + "\" is missing.",
         "A Mamba config.json needs it (see docs/export.md).");
  }
  [[noreturn]] void wrong_type(const char* key, const char* expected) const {
    fail(std::string("\"") + key + "\" is " + j_.at(key).dump() + ", expected " + expected + ".",
         "Fix config.json (see docs/export.md).");
  }

  const json& j_;
  fs::path path_;
};

/// The ModelConfig a config.json describes: a plain Mamba stack as Hugging Face builds it.
ModelConfig config_from_hf(const json& j, const fs::path& path) {
  HfConfigReader r(j, path);
  if (!j.is_object()) r.fail("not a JSON object.", "Give the config.json of a Mamba model.");
  const std::string type = r.string("model_type", "mamba");
  if (type != "mamba") {
    r.fail("model_type is \"" + type + "\", not \"mamba\".",
           "Only Hugging Face's Mamba (MambaForCausalLM) layout can be imported.");
  }
  if (r.boolean("use_bias", false)) {
    r.fail("use_bias is true, but mmlab's Mamba layer has no in_proj/out_proj bias.",
           "Only models with use_bias false can be imported.");
  }
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") {
    r.fail("hidden_act is \"" + act + "\", but mmlab's Mamba layer uses SiLU.",
           "Only models with hidden_act \"silu\" can be imported.");
  }
  ModelConfig c;
  c.family = "mamba";
  c.d_model = static_cast<int>(r.integer("hidden_size"));
  c.vocab_size = static_cast<int>(r.integer("vocab_size"));
  c.d_state = static_cast<int>(r.integer("state_size", 16));
  c.d_conv = static_cast<int>(r.integer("conv_kernel", 4));
  c.expand = static_cast<int>(r.integer("expand", 2));
  // MambaConfig accepts "auto" for ceil(hidden_size / 16), mmlab's default too.
  const json* rank = r.find("time_step_rank");
  if (rank && rank->is_string() && rank->get<std::string>() == "auto") {
    c.dt_rank = 0;
  } else {
    c.dt_rank = static_cast<int>(r.integer("time_step_rank", 0));
  }
  if (const json* inter = r.find("intermediate_size")) {
    // MambaConfig recomputes it as expand * hidden_size; a file disagreeing is ambiguous.
    if (!inter->is_number_integer() ||
        inter->get<int64_t>() != int64_t(c.expand) * int64_t(c.d_model)) {
      r.fail("intermediate_size " + inter->dump() + " is not expand * hidden_size (" +
                 std::to_string(int64_t(c.expand) * c.d_model) + ").",
             "Fix config.json: transformers derives intermediate_size from expand.");
    }
  }
  const int64_t n_layer = r.integer("num_hidden_layers");
  if (n_layer <= 0) r.fail("num_hidden_layers must be > 0.", "Fix config.json.");
  // Pairs "M M" as our Mamba family does; an odd count takes one "M" per block.
  c.pattern = n_layer % 2 == 0 ? "M M" : "M";
  c.n_block = static_cast<int>(n_layer % 2 == 0 ? n_layer / 2 : n_layer);
  c.norm = "rmsnorm";
  c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
  c.final_norm = true;
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  c.dt_min = r.number("time_step_min", c.dt_min);
  c.dt_max = r.number("time_step_max", c.dt_max);
  c.dt_init_floor = r.number("time_step_floor", c.dt_init_floor);
  // The same validation as every other config (positive sizes, dt_min <= dt_max, …).
  return model_config_from_json(to_json(c), path.string());
}

bool same_structure(const ModelConfig& a, const ModelConfig& b) {
  const json ja = hf_mamba_config(a), jb = hf_mamba_config(b);
  for (const char* key : kStructuralKeys) {
    if (ja.at(key) != jb.at(key)) return false;
  }
  return true;
}

}  // namespace

void check_hf_mamba_exportable(const ModelConfig& c) {
  std::vector<std::string> problems;
  std::set<std::string> others;
  for (const LayerSpec& s : expand_layers(c)) {
    if (s.kind != LayerKind::kMamba || s.has_moe()) others.insert(s.token);
  }
  if (!others.empty()) {
    std::string list;
    for (const auto& t : others) list += (list.empty() ? "" : ", ") + t;
    problems.push_back("its layer pattern \"" + c.resolved_pattern() +
                       "\" has layers other than plain Mamba (" + list +
                       "), so use family \"mamba\" (pattern \"M M\")");
  }
  if (c.norm != "rmsnorm") {
    problems.push_back("model.norm is \"" + c.norm + "\", set it to \"rmsnorm\"");
  }
  if (!c.final_norm) problems.push_back("model.final_norm is false, set it to true");
  if (problems.empty()) return;
  std::string text;
  for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
  throw UserError(
      "Hugging Face's MambaForCausalLM cannot hold this " + c.family + " model: " + text + ".",
      "Train a model with those settings, or export this one with --format "
      "safetensors (every family).");
}

json hf_mamba_config(const ModelConfig& c, const HfExportOptions& options) {
  const int64_t token = options.eot_id >= 0 ? options.eot_id : 0;
  return json{{"architectures", {"MambaForCausalLM"}},
              {"model_type", "mamba"},
              {"vocab_size", c.vocab_size},
              {"hidden_size", c.d_model},
              {"state_size", c.d_state},
              {"num_hidden_layers", static_cast<int64_t>(expand_layers(c).size())},
              {"conv_kernel", c.d_conv},
              {"expand", c.expand},
              {"intermediate_size", c.d_inner()},
              {"time_step_rank", c.resolved_dt_rank()},
              {"use_bias", false},
              {"use_conv_bias", true},
              {"hidden_act", "silu"},
              {"layer_norm_epsilon", c.norm_eps},
              {"residual_in_fp32", true},
              {"tie_word_embeddings", c.tie_embeddings},
              {"pad_token_id", token},
              {"bos_token_id", token},
              {"eos_token_id", token},
              {"torch_dtype", "float32"},
              {"use_cache", true},
              {"initializer_range", 0.1},
              {"time_step_scale", 1.0},
              {"time_step_min", c.dt_min},
              {"time_step_max", c.dt_max},
              {"time_step_init_scheme", "random"},
              {"time_step_floor", c.dt_init_floor},
              {"rescale_prenorm_residual", false}};
}

std::string hf_mamba_name(const std::string& name) {
  if (name == "lm_head.weight") return name;
  if (name == "embedding.weight") return "backbone.embeddings.weight";
  return "backbone." + name;  // layers.{i}.norm/mixer.*, norm_f.weight
}

void export_hf_mamba(LanguageModel& model, const fs::path& dir, const HfExportOptions& options) {
  check_hf_mamba_exportable(model->config);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw UserError("Cannot create the export directory " + dir.string() + ".",
                    "Check that its parent exists and is writable, and that it is not a file.");
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model->named_parameters()) {
    // F32 whatever the training dtype: config.json says torch_dtype float32. A tied head is
    // not written, as save_pretrained does; transformers ties it on load.
    tensors.emplace_back(hf_mamba_name(p.key()), p.value().detach().to(torch::kFloat32));
  }
  // "format": "pt" is required by several transformers versions (docs/export.md).
  save_safetensors(dir / kModelFile, tensors,
                   {{"format", "pt"}, {kMmlabConfigKey, to_json(model->config).dump()}});
  write_file_atomically(dir / kConfigFile, hf_mamba_config(model->config, options).dump(2) + "\n");
}

LanguageModel import_hf_mamba(const fs::path& dir) {
  const fs::path config_path = dir / kConfigFile;
  if (!fs::exists(config_path)) {
    throw UserError("The directory " + dir.string() + " has no config.json.",
                    "Give a directory written by `mmlab export-model --format hf` or by "
                    "transformers' save_pretrained.");
  }
  json j;
  try {
    j = json::parse(read_file(config_path));
  } catch (const json::exception& e) {
    throw UserError(config_path.string() + " is not valid JSON (" + e.what() + ").",
                    "Fix or re-export the file.");
  }
  ModelConfig config = config_from_hf(j, config_path);
  const bool conv_bias = HfConfigReader(j, config_path).boolean("use_conv_bias", true);

  SafetensorsFile file = load_safetensors(dir / kModelFile);
  if (file.metadata.count(kMmlabConfigKey)) {
    // Our own export: keep family, pattern and init settings when they describe this model.
    try {
      ModelConfig ours = model_config_from_safetensors(file);
      check_hf_mamba_exportable(ours);
      if (same_structure(ours, config)) config = ours;
    } catch (const UserError&) {
      // config.json is the authority; a stale or foreign mmlab config is ignored.
    }
  }
  LanguageModel model(config);
  if (!conv_bias) {
    // use_conv_bias false = a zero bias in our always-biased conv.
    for (const auto& p : model->named_parameters()) {
      const std::string name = hf_mamba_name(p.key());
      if (name.size() > 12 && name.compare(name.size() - 12, 12, ".conv1d.bias") == 0 &&
          !file.contains(name)) {
        file.tensors.emplace_back(name, torch::zeros_like(p.value()));
      }
    }
  }
  std::vector<std::string> ignorable;
  if (config.tie_embeddings && file.contains("lm_head.weight")) {
    // A tied head may be written too; it must then be the embedding itself.
    const auto& head = file.at("lm_head.weight");
    const auto& emb = file.at("backbone.embeddings.weight");
    if (head.sizes() != emb.sizes() || !torch::equal(head, emb)) {
      throw UserError((dir / kModelFile).string() +
                          " has tie_word_embeddings true but lm_head.weight differs from "
                          "backbone.embeddings.weight.",
                      "Set tie_word_embeddings to false in config.json, or drop lm_head.weight.");
    }
    ignorable.push_back("lm_head.weight");
  }
  copy_tensors_into(model, file, hf_mamba_name, ignorable);
  return model;
}

void write_reference_logits(LanguageModel& model, const torch::Tensor& ids, const fs::path& path) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto device = model->embedding->weight.device();
  auto logits = model(ids.to(device, torch::kLong)).logits;  // (B, L, V)
  save_safetensors(
      path,
      {{"input_ids", ids.to(torch::kLong).cpu()}, {"logits", logits.to(torch::kFloat32).cpu()}},
      {{"format", "pt"}});
}

}  // namespace mmlab
