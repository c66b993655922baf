// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernels/register.h"

#include "kernels/src/registrations.h"

namespace mmlab::kernels {

void register_all() {
  register_selective_scan_cuda();
  register_causal_conv1d_cuda();
  register_causal_conv1d_update_cuda();
  register_selective_state_update_cuda();
  register_lm_head_loss_cuda();
  register_mamba_inner_cuda();
  register_norm_cuda();
  register_attention_heads_cuda();
}

}  // namespace mmlab::kernels
