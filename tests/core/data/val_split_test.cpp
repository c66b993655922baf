// SPDX-License-Identifier: GPL-3.0-or-later
// The train/validation split: which documents are held out, and the streams they are joined into.
#include "core/data/val_split.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace mmlab::data {
namespace {

using ::testing::ElementsAre;
using Ids = std::vector<std::int32_t>;

TEST(JoinDocuments, EotBeforeEachDocument) {
  TokenizedDocuments docs;
  docs.tokens = {1, 2, 3, 4, 5, 6};
  docs.offsets = {0, 2, 3, 6};
  EXPECT_THAT(join_documents(docs, 9, [](std::size_t) { return true; }),
              ElementsAre(9, 1, 2, 9, 3, 9, 4, 5, 6));
  EXPECT_THAT(join_documents(docs, 9, [](std::size_t i) { return i == 1; }), ElementsAre(9, 3));
}

TEST(ValidationSplit, WholeDocumentsNearTheFraction) {
  TokenizedDocuments docs;
  docs.offsets = {0};
  for (int d = 0; d < 200; ++d) {
    for (int k = 0; k < 50 + d % 7; ++k) docs.tokens.push_back(d * 1000 + k);
    docs.offsets.push_back(docs.tokens.size());
  }
  ValSplitKind kind;
  const auto val = choose_validation_documents(docs, 0.1, &kind);
  EXPECT_EQ(kind, ValSplitKind::kDocuments);
  std::size_t held = 0;
  for (std::size_t i = 0; i < val.size(); ++i) {
    if (val[i]) held += docs.offsets[i + 1] - docs.offsets[i];
  }
  const double fraction = static_cast<double>(held) / static_cast<double>(docs.tokens.size());
  EXPECT_GE(fraction, 0.1);
  EXPECT_LT(fraction, 0.11);
  // The choice depends on document content only, not on order.
  TokenizedDocuments reversed;
  reversed.offsets = {0};
  for (std::size_t d = docs.documents(); d-- > 0;) {
    reversed.tokens.insert(reversed.tokens.end(), docs.tokens.begin() + docs.offsets[d],
                           docs.tokens.begin() + docs.offsets[d + 1]);
    reversed.offsets.push_back(reversed.tokens.size());
  }
  const auto val_reversed = choose_validation_documents(reversed, 0.1, &kind);
  for (std::size_t i = 0; i < val.size(); ++i) EXPECT_EQ(val[i], val_reversed[val.size() - 1 - i]);
}

TEST(ValidationSplit, OneDocumentFallsBackToTheTail) {
  TokenizedDocuments docs;
  docs.tokens.assign(1000, 3);
  docs.offsets = {0, 1000};
  ValSplitKind kind;
  const auto val = choose_validation_documents(docs, 0.05, &kind);
  EXPECT_EQ(kind, ValSplitKind::kTail);
  EXPECT_FALSE(val[0]);
  choose_validation_documents(docs, 0.0, &kind);
  EXPECT_EQ(kind, ValSplitKind::kNone);
}

// 40 documents of 20..59 tokens, document d's tokens all d + 1 (so a stream says whose it is).
TokenizedDocuments forty_documents() {
  TokenizedDocuments docs;
  docs.offsets = {0};
  for (int d = 0; d < 40; ++d) {
    docs.tokens.insert(docs.tokens.end(), static_cast<std::size_t>(20 + d), d + 1);
    docs.offsets.push_back(docs.tokens.size());
  }
  return docs;
}

// The documents of an eot-joined stream, as their token values; checks each is whole.
std::vector<std::int32_t> documents_in(const Ids& stream, std::int32_t eot) {
  std::vector<std::int32_t> ids;
  EXPECT_TRUE(stream.empty() || stream.front() == eot);
  for (std::size_t i = 0; i < stream.size(); ++i) {
    if (stream[i] != eot) continue;
    const std::int32_t d = stream[i + 1];
    const std::size_t len = static_cast<std::size_t>(20 + d - 1);
    EXPECT_TRUE(std::all_of(stream.begin() + i + 1, stream.begin() + i + 1 + len,
                            [&](std::int32_t t) { return t == d; }));
    EXPECT_TRUE(i + 1 + len == stream.size() || stream[i + 1 + len] == eot);
    ids.push_back(d);
  }
  return ids;
}

TEST(SplitTrainVal, WholeDocumentsGoToExactlyOneSide) {
  const TokenizedDocuments docs = forty_documents();
  const SplitStreams s = split_train_val(docs, 0.1, 0);
  ASSERT_EQ(s.kind, ValSplitKind::kDocuments);
  const auto train = documents_in(s.train, 0), val = documents_in(s.val, 0);
  EXPECT_EQ(train.size(), s.train_documents);
  EXPECT_EQ(val.size(), s.val_documents);
  EXPECT_EQ(s.train_documents + s.val_documents, 40u);
  EXPECT_GE(s.val_documents, 1u);
  std::set<std::int32_t> all(train.begin(), train.end());
  for (std::int32_t d : val) EXPECT_TRUE(all.insert(d).second) << "document " << d << " on both";
  EXPECT_EQ(all.size(), 40u);
  // Every token and one end-of-text id per document.
  EXPECT_EQ(s.train.size() + s.val.size(), docs.tokens.size() + 40);
}

TEST(SplitTrainVal, TooFewDocumentsHoldOutTheStreamsTailButNeverAllOfIt) {
  TokenizedDocuments one;
  for (std::int32_t i = 1; i <= 1000; ++i) one.tokens.push_back(i);
  one.offsets = {0, 1000};
  const SplitStreams s = split_train_val(one, 0.05, 0);
  ASSERT_EQ(s.kind, ValSplitKind::kTail);
  ASSERT_EQ(s.val.size(), 50u);  // round(0.05 * 1001)
  EXPECT_EQ(s.train.size(), 951u);
  EXPECT_EQ(s.train.front(), 0);
  EXPECT_EQ(s.train.back(), 950);
  EXPECT_EQ(s.val.front(), 951);
  EXPECT_EQ(s.val.back(), 1000);
  EXPECT_EQ(s.train_documents, 1u);
  EXPECT_EQ(s.val_documents, 0u);
  const SplitStreams most = split_train_val(one, 0.9999, 0);
  EXPECT_EQ(most.train.size(), 1u);
  EXPECT_EQ(most.val.size(), 1000u);
}

TEST(SplitTrainVal, NoValidationFractionKeepsEverythingForTraining) {
  const TokenizedDocuments docs = forty_documents();
  const SplitStreams s = split_train_val(docs, 0.0, 0);
  EXPECT_EQ(s.kind, ValSplitKind::kNone);
  EXPECT_TRUE(s.val.empty());
  EXPECT_EQ(s.train_documents, 40u);
  EXPECT_EQ(s.train, join_documents(docs, 0, [](std::size_t) { return true; }));
}

}  // namespace
}  // namespace mmlab::data
