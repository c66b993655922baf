// SPDX-License-Identifier: GPL-3.0-or-later
// Training checkpoints: model, optimizer, RNG, data position, step, smoothed-loss state and the
// full run config, in one LibTorch archive written atomically (temp file + fsync + rename).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/models/language_model.h"

namespace mmlab {

struct TrainState {
  int64_t step = 0;
  int64_t tokens = 0;
  double wall = 0;     ///< training seconds so far, over all sessions
  double ema_raw = 0;  ///< DebiasedEma state
  int64_t ema_count = 0;
  std::string data_state;  ///< WindowSampler::state()
  std::string tokenizer_kind;
  std::string tokenizer_path;
  /// Tokens routed to each expert since the last evaluation, one (X) int64 tensor per MoE layer
  /// (undefined: none yet), so that the expert_load an evaluation records covers the same steps
  /// whether or not the run was resumed in between.
  std::vector<torch::Tensor> expert_load;
};

struct SavedCheckpoint {
  int64_t bytes = 0;
  std::string hash;  ///< xxh64 of the file, hex
};

/// Writes a checkpoint; returns its size and content hash (computed while writing, so the file is
/// never read back). A full disk is a ResourceError and leaves the previous checkpoints untouched.
SavedCheckpoint save_checkpoint(const std::filesystem::path& path, const RunConfig& config,
                                LanguageModel& model, torch::optim::Optimizer* optimizer,
                                const TrainState& state);

/// The run config stored in a checkpoint (to rebuild the model before load_checkpoint).
RunConfig read_checkpoint_config(const std::filesystem::path& path);

/// Why the file at `path` is not the checkpoint the results store recorded (`bytes` long, xxh64
/// `hash`): missing, of another size, or with another content hash; nullopt when it is intact.
/// The reason is one sentence naming the file.
std::optional<std::string> checkpoint_problem(const std::filesystem::path& path, int64_t bytes,
                                              const std::string& hash);

/// xxh64 of a file's bytes, as 16 hex digits (the hash the store records for a checkpoint).
std::string file_xxh64(const std::filesystem::path& path);

/// True when every parameter and every optimizer moment is finite: a checkpoint is written only
/// then, so that the one a diverged run keeps can be trained on.
bool training_state_is_finite(LanguageModel& model, torch::optim::Optimizer* optimizer);

/// Loads into an already built model (and optimizer, when given). A checkpoint of another model
/// config, or a missing/corrupt file, is a UserError naming the file.
TrainState load_checkpoint(const std::filesystem::path& path, LanguageModel& model,
                           torch::optim::Optimizer* optimizer);

/// The same from the file's bytes (the other ranks of a data-parallel run receive them from rank
/// 0, whose file they may not see); `path` names the file in messages.
TrainState load_checkpoint_bytes(const std::string& bytes, const std::filesystem::path& path,
                                 LanguageModel& model, torch::optim::Optimizer* optimizer);

}  // namespace mmlab
