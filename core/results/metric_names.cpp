// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/metric_names.h"

#include <algorithm>
#include <charconv>

namespace mmlab::metric {

std::string expert_load(int64_t layer, int64_t expert) {
  return kExpertLoadPrefix + std::to_string(layer) + "/" + std::to_string(expert);
}

bool parse_expert_load(std::string_view name, std::string& layer, int& expert) {
  const std::string_view prefix = kExpertLoadPrefix;
  if (name.substr(0, prefix.size()) != prefix) return false;
  const std::string_view rest = name.substr(prefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  const std::string_view number = rest.substr(slash + 1);
  int value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size() || number.empty() || value < 0)
    return false;
  layer = std::string(rest.substr(0, slash));
  expert = value;
  return true;
}

bool is_known(std::string_view name) {
  std::string layer;
  int expert = 0;
  return name == kUnigramEntropy ||
         std::find(std::begin(kCurves), std::end(kCurves), name) != std::end(kCurves) ||
         parse_expert_load(name, layer, expert);
}

}  // namespace mmlab::metric
