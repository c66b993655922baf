// SPDX-License-Identifier: GPL-3.0-or-later
// `mmlab export-model`: a checkpoint's model as one safetensors file with its config embedded
// (every family), or as the directory Hugging Face transformers loads as MambaForCausalLM.
#include <ATen/CPUGeneratorImpl.h>

#include <iostream>
#include <memory>

#include "core/cli/cli.h"
#include "core/cli/inference.h"
#include "core/io/hf_mamba.h"
#include "core/io/model_file.h"
#include "core/train/device.h"
#include "core/util/error.h"

namespace mmlab::cli {

namespace fs = std::filesystem;

namespace {

const char* kReferenceFile = "reference-logits.safetensors";

struct ExportModelArgs {
  ModelSource source;
  std::string out;
  std::string format = "safetensors";
  bool reference = false;
};

int run_export_model(const ExportModelArgs& a, const Context& ctx) {
  if (a.reference && a.format != "hf") {
    throw UserError("--with-reference-logits only applies to --format hf.", "", kExitUsage);
  }
  set_cpu_threads(0);  // the reference logits are a forward pass
  InferenceModel m = load_inference_model(a.source, ctx.db_path(), /*with_tokenizer=*/false);
  if (a.format == "safetensors") {
    // --out names the file when it ends in .safetensors, else the folder that gets one.
    fs::path file = a.out;
    if (file.extension() != ".safetensors") {
      std::error_code ec;
      fs::create_directories(file, ec);
      file /= "model.safetensors";
    }
    save_model_safetensors(m.model, file);
    std::cout << "Wrote " << file.string() << " (" << m.config.model.family
              << ", config embedded as \"" << kMmlabConfigKey << "\").\n";
    return kExitOk;
  }
  // Refuse before touching the tokenizer: the usual failure is a model HF cannot hold.
  check_hf_mamba_exportable(m.config.model);
  HfExportOptions options;
  try {
    options.eot_id = checkpoint_tokenizer(m.config, m.state)->eot_id();
  } catch (const UserError& e) {
    // The ids only matter for generation in transformers; the weights are complete without.
    std::cerr << "mmlab: warning: " << e.what() << " Writing token ids 0 in config.json.\n";
  }
  export_hf_mamba(m.model, a.out, options);
  std::cout << "Wrote " << a.out << "/model.safetensors and config.json (MambaForCausalLM).\n";
  if (a.reference) {
    // Random ids over the whole vocabulary, fixed seed: the same file for the same model.
    at::Generator gen = at::detail::createCPUGenerator(0);
    auto ids = torch::randint(0, m.config.model.vocab_size, {2, 64}, gen, torch::kLong);  // (B, L)
    const fs::path ref = fs::path(a.out) / kReferenceFile;
    write_reference_logits(m.model, ids, ref);
    std::cout << "Wrote " << ref.string() << " (input_ids (2, 64), logits) for "
              << "scripts/check-hf-export.py.\n";
  }
  return kExitOk;
}

}  // namespace

void add_export_model_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ExportModelArgs>();
  CLI::App* sub = app.add_subcommand(
      "export-model",
      "Export a checkpoint's model: --format safetensors (every family; one file with the config "
      "embedded) or --format hf (a Mamba model with RMSNorm and a final norm, as the directory "
      "transformers loads with MambaForCausalLM.from_pretrained). See docs/export.md.");
  add_model_source_options(sub, args->source);
  sub->add_option("--out", args->out,
                  "Output folder (for safetensors also a file name ending in .safetensors)")
      ->required();
  sub->add_option("--format", args->format, "safetensors | hf")
      ->check(CLI::IsMember({"safetensors", "hf"}))
      ->capture_default_str();
  // For scripts/check-hf-export.py only, hence hidden (an empty group hides an option).
  sub->add_flag("--with-reference-logits", args->reference,
                "Also write reference-logits.safetensors (input_ids, logits) into --out")
      ->group("");
  add_db_option(sub, ctx);
  sub->callback(
      [args, &ctx] { ctx.action = [args, &ctx] { return run_export_model(*args, ctx); }; });
}

}  // namespace mmlab::cli
