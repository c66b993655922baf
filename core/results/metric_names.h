// SPDX-License-Identifier: GPL-3.0-or-later
// The names of the curves a run records: the one vocabulary of the trainer (which writes them),
// the store (whose run summaries and SQL read some of them), `mmlab report` and `mmlab runs`, and
// the studio's charts. A name is the metric_names.name column, the progress stream's metric key
// and the chart's label alike (docs/progress-protocol.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mmlab::metric {

inline constexpr char kLoss[] = "loss";                 ///< training loss of a step (nats/token)
inline constexpr char kLossSmooth[] = "loss_smooth";    ///< its debiased EMA (core/results/ema.h)
inline constexpr char kLr[] = "lr";                     ///< learning rate of the step
inline constexpr char kGradNorm[] = "grad_norm";        ///< gradient norm before clipping
inline constexpr char kTokensPerS[] = "tokens_per_s";   ///< training throughput
inline constexpr char kStepTime[] = "step_time";        ///< seconds one step took
inline constexpr char kAuxLoss[] = "aux_loss";          ///< MoE load-balancing loss (MoE runs)
inline constexpr char kDroppedFrac[] = "dropped_frac";  ///< tokens over expert capacity (MoE runs)
inline constexpr char kPeakMemGb[] = "peak_mem_gb";     ///< peak GPU memory (GPU runs)
inline constexpr char kValLoss[] = "val_loss";          ///< validation loss
inline constexpr char kValPpl[] = "val_ppl";            ///< exp(val_loss)

/// Every named curve above, in the order a chart offers them.
inline constexpr std::string_view kCurves[] = {kLoss,     kLossSmooth,  kValLoss,  kValPpl,
                                               kAuxLoss,  kLr,          kGradNorm, kTokensPerS,
                                               kStepTime, kDroppedFrac, kPeakMemGb};

/// One point at step 0: the entropy of the training split's unigram distribution (nats), the loss
/// of a model that ignores context (`mmlab report` prints the baseline's). Not a chart's curve.
inline constexpr char kUnigramEntropy[] = "unigram_entropy";

/// The per-expert routing curves of a MoE run: "expert_load/<layer>/<expert>", the fraction of a
/// layer's tokens routed to one expert since the previous evaluation.
inline constexpr char kExpertLoadPrefix[] = "expert_load/";

/// "expert_load/<layer>/<expert>".
std::string expert_load(int64_t layer, int64_t expert);
/// Whether `name` is an expert-load curve; if so, its layer (the text between the slashes) and
/// expert index. Other names, and malformed ones (expert_load/x, expert_load/0/y), give false.
bool parse_expert_load(std::string_view name, std::string& layer, int& expert);
/// Whether `name` is one of kCurves, kUnigramEntropy or an expert-load curve.
bool is_known(std::string_view name);

}  // namespace mmlab::metric
