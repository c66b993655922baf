// SPDX-License-Identifier: GPL-3.0-or-later
// One function per op, each defined next to its kernel's glue; register_all() calls them all.
#pragma once

namespace mmlab::kernels {

void register_selective_scan_cuda();
void register_causal_conv1d_cuda();
void register_causal_conv1d_update_cuda();
void register_selective_state_update_cuda();
void register_lm_head_loss_cuda();
void register_mamba_inner_cuda();
void register_norm_cuda();
void register_attention_heads_cuda();

}  // namespace mmlab::kernels
