// SPDX-License-Identifier: GPL-3.0-or-later
// Training checkpoints: model, optimizer, RNG, data position, step, smoothed-loss state and the
// full run config, in one LibTorch archive written atomically (temp file + fsync + rename).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

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

/// Loads into an already built model (and optimizer, when given). A checkpoint of another model
/// config, or a missing/corrupt file, is a UserError naming the file.
TrainState load_checkpoint(const std::filesystem::path& path, LanguageModel& model,
                           torch::optim::Optimizer* optimizer);

}  // namespace mmlab
