// SPDX-License-Identifier: GPL-3.0-or-later
// The train/validation split of a tokenized corpus: whole documents held out by a content hash
// (stable when the corpus grows or is reordered), and the documents joined into token streams
// with the end-of-text id as the paper's code does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/data/documents.h"

namespace mmlab::data {

/// How the validation set was chosen.
enum class ValSplitKind {
  kNone,       ///< val_fraction == 0
  kDocuments,  ///< whole documents, disjoint from training
  kTail,       ///< too few documents of a suitable size: the last tokens of the stream
};

/// Picks validation documents: documents ordered by the xxh64 of their tokens (stable when the
/// corpus grows or is reordered), then taken in that order while the held-out tokens are below
/// val_fraction of all tokens, skipping any document that would push them past twice that. If
/// that cannot reach half the target (e.g. one huge document), or it would leave no training
/// document, the last val_fraction of the token stream is held out instead (kTail). Returns one
/// flag per document (true = validation).
std::vector<bool> choose_validation_documents(const TokenizedDocuments& docs, double val_fraction,
                                              ValSplitKind* kind);

/// Joins documents with `eot` in front of each one (llm.c's layout, so every document starts
/// after an end-of-text token and windows see it between documents). `pick(i)` selects documents.
std::vector<std::int32_t> join_documents(const TokenizedDocuments& docs, std::int32_t eot,
                                         const std::function<bool(std::size_t)>& pick);

/// The two token streams of a corpus and how they were split.
struct SplitStreams {
  std::vector<std::int32_t> train;  ///< eot doc eot doc ...
  std::vector<std::int32_t> val;    ///< same layout; empty with ValSplitKind::kNone
  ValSplitKind kind = ValSplitKind::kNone;
  std::size_t train_documents = 0;  ///< every document with kTail
  std::size_t val_documents = 0;    ///< 0 with kTail
};

/// Splits `docs` by choose_validation_documents and joins each side with `eot`. With kTail the
/// joined stream's last val_fraction of tokens (at least one stays for training) is validation.
SplitStreams split_train_val(const TokenizedDocuments& docs, double val_fraction, std::int32_t eot);

}  // namespace mmlab::data
