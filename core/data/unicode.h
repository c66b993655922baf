// SPDX-License-Identifier: GPL-3.0-or-later
// The few Unicode facts GPT-2's pre-tokenizer needs besides UTF-8 decoding (core/util/utf8.h):
// whether a code point is a letter (\p{L}), a number (\p{N}) or white space (\s). Internal to
// core/data.
#pragma once

#include <cstddef>

namespace mmlab::data::unicode {

/// General category L* (Lu, Ll, Lt, Lm, Lo), from Unicode 14 tables.
bool is_letter(char32_t cp);
/// General category N* (Nd, Nl, No).
bool is_number(char32_t cp);
/// The White_Space property (what `\s` matches in Python's `regex` module, which GPT-2 uses).
bool is_space(char32_t cp);

}  // namespace mmlab::data::unicode
