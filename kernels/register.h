// SPDX-License-Identifier: GPL-3.0-or-later
// The one entry point of the kernels library: adds every CUDA implementation to core's op
// registries (core/ops/mamba_ops.h). Called explicitly by the mains and the test main when the
// build has kernels (MMLAB_HAVE_KERNELS); a static library would drop self-registering globals.
#pragma once

namespace mmlab::kernels {

void register_all();

}  // namespace mmlab::kernels
