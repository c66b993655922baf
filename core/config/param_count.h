// SPDX-License-Identifier: GPL-3.0-or-later
// Parameter counts computed from a config alone (no tensors), so the studio can show them while a
// config is edited. The paper's convention: non-embedding excludes the token embedding and the
// output head, and includes every norm, bias, A_log, D and router; active counts the router plus
// one expert per MoE. A test checks these against the built model's tensors.
#pragma once

#include <cstdint>

#include "core/config/config.h"

namespace mmlab {

struct ParamCounts {
  int64_t total = 0;            ///< every parameter (a tied head counted once)
  int64_t active = 0;           ///< per token: one expert per MoE
  int64_t nonembed = 0;         ///< total without embedding and head
  int64_t nonembed_active = 0;  ///< active without embedding and head
};

/// The vocabulary a run will have: model.vocab_size when set, else its tokenizer's (GPT-2: 50257,
/// byte: 257, SentencePiece: data.tokenizer_vocab, the size it is trained to).
int expected_vocab_size(const RunConfig& run);

/// `vocab_size` overrides config.vocab_size when non-zero.
ParamCounts count_params(const ModelConfig& config, int vocab_size = 0);

}  // namespace mmlab
