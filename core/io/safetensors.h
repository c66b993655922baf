// SPDX-License-Identifier: GPL-3.0-or-later
// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors), the
// file format of our checkpoints' weights and of the Hugging Face export.
//
// Layout of a file:
//   u64 little-endian N | N bytes of JSON header, padded with spaces | data section
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) plus an optional "__metadata__" object of string → string. Tensor
// data is raw, C-contiguous and little-endian, laid out in the order the tensors were written, with
// no gaps. No packaged C++ library exists for it (see docs/export.md), hence this one.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mmlab {

/// What load_safetensors() returns: every tensor (CPU, owning its own memory, in the order of the
/// data section, which is the order they were written in) and the header's "__metadata__".
struct SafetensorsFile {
  std::filesystem::path path;  ///< the file it came from, kept for error messages
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const;
  /// The tensor called `name`; a missing one is a UserError naming the file and the tensor.
  const torch::Tensor& at(const std::string& name) const;
};

/// Writes `tensors` (moved to the CPU and made contiguous, one at a time, so a large model is never
/// copied whole) and `metadata` to `path`, atomically: on any failure the old file, if any, is
/// untouched and no temporary file remains. Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8
/// BOOL. Duplicate or empty names, the reserved name "__metadata__", sparse tensors and other
/// dtypes are a UserError naming the tensor; an unwritable path a UserError, a full disk a
/// ResourceError.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Reads a whole safetensors file. Every way a file can be broken (truncated, a header length past
/// the end, malformed JSON, an unknown dtype, offsets out of range, overlapping, leaving holes or
/// not matching shape × dtype size, duplicate names, non-string metadata) is a UserError whose
/// message names the file.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

/// The safetensors name of a dtype ("F32", "BF16", …); a dtype the format cannot hold is a
/// UserError.
std::string safetensors_dtype_name(torch::ScalarType dtype);

}  // namespace mmlab
