// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/train/device.h"

#include <thread>

#include "core/ops/torch_compat.h"
#include "core/util/error.h"

namespace mmlab {

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ResourceError(
          "No CUDA GPU is available for train.device \"" + name + "\"" +
              (compat::cuda_built() ? "." : " (this mmlab was built with a CPU-only LibTorch)."),
          "Set train.device to \"cpu\" (or pass --device cpu), or run on a machine with a GPU.");
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    const int64_t index = name == "cuda" ? 0 : std::stoll(name.substr(5));
    if (index < 0 || index >= count) {
      throw ResourceError(
          "There is no GPU " + name + " (this machine has " + std::to_string(count) + ").",
          "Choose cuda:0 to cuda:" + std::to_string(count - 1) + ".");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UserError("Unknown device \"" + name + "\".", "Use cpu, cuda or cuda:N.");
}

std::string describe_device(const torch::Device& device) {
  if (device.is_cpu()) return "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
  return device.str() + " (" + compat::cuda_device_name(device.index()) + ")";
}

bool is_out_of_memory(const std::exception& e) {
  const std::string what = e.what();
  return what.find("out of memory") != std::string::npos ||
         what.find("OutOfMemory") != std::string::npos ||
         what.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos;
}

void set_cpu_threads(int threads) {
  const int n =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
}

}  // namespace mmlab
