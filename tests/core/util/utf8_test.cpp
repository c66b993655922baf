// SPDX-License-Identifier: GPL-3.0-or-later
// The one UTF-8 decoder: what the config checker calls well-formed is what the tokenizers decode,
// and the text tables count the characters a terminal shows.
#include "core/util/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace mmlab {
namespace {

TEST(Utf8, DecodesEachLengthAndReportsIt) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  std::size_t len = 0;
  EXPECT_EQ(decode_utf8(s, 0, &len), U'a');
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(decode_utf8(s, 1, &len), U'\u00E9');
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(decode_utf8(s, 3, &len), U'\u20AC');
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(decode_utf8(s, 6, &len), U'\U0001F600');
  EXPECT_EQ(len, 4u);
  EXPECT_EQ(utf8_length(s, 0), 1u);
  EXPECT_EQ(utf8_length(s, 1), 2u);
  EXPECT_EQ(utf8_length(s, 3), 3u);
  EXPECT_EQ(utf8_length(s, 6), 4u);
  EXPECT_EQ(count_code_points(s), 4u);
}

TEST(Utf8, IllFormedSequencesAreOneReplacementByteAndNoLength) {
  const char* bad[] = {
      "\x80",              // a lone continuation byte
      "\xC0\xAF",          // overlong '/'
      "\xC1\xBF",          // overlong
      "\xE0\x80\xAF",      // overlong, three bytes
      "\xED\xA0\x80",      // a surrogate
      "\xF0\x80\x80\xAF",  // overlong, four bytes
      "\xF4\x90\x80\x80",  // past U+10FFFF
      "\xF5\x80\x80\x80",  // a lead byte that never starts a character
      "\xFF",              //
      "\xE2\x82",          // truncated
      "\xC3\x41",          // a lead byte without its continuation
  };
  for (const char* b : bad) {
    const std::string s = b;
    std::size_t len = 0;
    EXPECT_EQ(decode_utf8(s, 0, &len), U'\uFFFD') << testing::PrintToString(s);
    EXPECT_EQ(len, 1u) << testing::PrintToString(s);
    EXPECT_EQ(utf8_length(s, 0), 0u) << testing::PrintToString(s);
  }
  // U+FFFD written out is a character like any other.
  EXPECT_EQ(utf8_length("\xEF\xBF\xBD", 0), 3u);
}

TEST(Utf8, ContinuationBytesAreNotCounted) {
  EXPECT_FALSE(is_utf8_continuation('a'));
  EXPECT_FALSE(is_utf8_continuation('\xC3'));
  EXPECT_TRUE(is_utf8_continuation('\xA9'));
  EXPECT_EQ(count_code_points(""), 0u);
  EXPECT_EQ(count_code_points("caf\xC3\xA9"), 4u);
}

}  // namespace
}  // namespace mmlab
