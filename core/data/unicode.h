// SPDX-License-Identifier: GPL-3.0-or-later
// The few Unicode facts GPT-2's pre-tokenizer needs: UTF-8 decoding that never fails, and whether
// a code point is a letter (\p{L}), a number (\p{N}) or white space (\s). Internal to core/data.
#pragma once

#include <cstddef>
#include <string_view>

namespace mmlab::data::unicode {

/// Decodes the code point at `s[pos]` and stores its length in bytes in `*len` (>= 1). An invalid
/// or truncated sequence yields U+FFFD with length 1, so every byte of the input is covered once.
char32_t decode_utf8(std::string_view s, std::size_t pos, std::size_t* len);

/// General category L* (Lu, Ll, Lt, Lm, Lo), from Unicode 14 tables.
bool is_letter(char32_t cp);
/// General category N* (Nd, Nl, No).
bool is_number(char32_t cp);
/// The White_Space property (what `\s` matches in Python's `regex` module, which GPT-2 uses).
bool is_space(char32_t cp);

}  // namespace mmlab::data::unicode
