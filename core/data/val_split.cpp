// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/val_split.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace mmlab::data {

std::vector<bool> choose_validation_documents(const TokenizedDocuments& docs, double val_fraction,
                                              ValSplitKind* kind) {
  const std::size_t n = docs.documents();
  std::vector<bool> val(n, false);
  *kind = ValSplitKind::kNone;
  if (val_fraction <= 0.0 || n == 0) return val;
  const double total = static_cast<double>(docs.tokens.size());
  const double target = val_fraction * total;
  std::vector<std::pair<std::uint64_t, std::size_t>> order(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t begin = docs.offsets[i];
    const std::size_t len = docs.offsets[i + 1] - begin;
    order[i] = {XXH64(docs.tokens.data() + begin, len * sizeof(std::int32_t), 0), i};
  }
  std::sort(order.begin(), order.end());
  double held = 0;
  std::size_t picked = 0;
  for (const auto& [hash, i] : order) {
    if (held >= target) break;
    const double len = static_cast<double>(docs.offsets[i + 1] - docs.offsets[i]);
    if (held + len > 2.0 * target) continue;
    val[i] = true;
    held += len;
    ++picked;
  }
  if (held >= 0.5 * target && picked < n && held > 0) {
    *kind = ValSplitKind::kDocuments;
    return val;
  }
  std::fill(val.begin(), val.end(), false);
  *kind = ValSplitKind::kTail;
  return val;
}

std::vector<std::int32_t> join_documents(const TokenizedDocuments& docs, std::int32_t eot,
                                         const std::function<bool(std::size_t)>& pick) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < docs.documents(); ++i) {
    if (pick(i)) total += 1 + docs.offsets[i + 1] - docs.offsets[i];
  }
  std::vector<std::int32_t> out;
  out.reserve(total);
  for (std::size_t i = 0; i < docs.documents(); ++i) {
    if (!pick(i)) continue;
    out.push_back(eot);
    out.insert(out.end(), docs.tokens.begin() + static_cast<std::ptrdiff_t>(docs.offsets[i]),
               docs.tokens.begin() + static_cast<std::ptrdiff_t>(docs.offsets[i + 1]));
  }
  return out;
}

SplitStreams split_train_val(const TokenizedDocuments& docs, double val_fraction,
                             std::int32_t eot) {
  SplitStreams out;
  const std::vector<bool> is_val = choose_validation_documents(docs, val_fraction, &out.kind);
  if (out.kind == ValSplitKind::kTail) {
    // Too few documents to hold some out whole: the stream's last tokens become validation.
    std::vector<std::int32_t> all = join_documents(docs, eot, [](std::size_t) { return true; });
    const auto held =
        static_cast<std::size_t>(std::llround(val_fraction * static_cast<double>(all.size())));
    const std::size_t cut = all.size() - std::min(held, all.size() - 1);
    out.val.assign(all.begin() + static_cast<std::ptrdiff_t>(cut), all.end());
    all.resize(cut);
    out.train = std::move(all);
    out.train_documents = docs.documents();
  } else {
    out.train = join_documents(docs, eot, [&](std::size_t i) { return !is_val[i]; });
    out.val = join_documents(docs, eot, [&](std::size_t i) { return is_val[i]; });
    out.val_documents = static_cast<std::size_t>(std::count(is_val.begin(), is_val.end(), true));
    out.train_documents = docs.documents() - out.val_documents;
  }
  return out;
}

}  // namespace mmlab::data
