// SPDX-License-Identifier: GPL-3.0-or-later
// UTF-8 as the project reads it: the config checker, the tokenizers and the text tables share one
// decoder, so "well-formed" (no overlong forms, surrogates or values past U+10FFFF) means the same
// everywhere.
#pragma once

#include <cstddef>
#include <string_view>

namespace mmlab {

/// Decodes the code point at `s[pos]` and stores its length in bytes in `*len` (>= 1). An invalid
/// or truncated sequence yields U+FFFD with length 1, so every byte of the input is covered once.
char32_t decode_utf8(std::string_view s, std::size_t pos, std::size_t* len);

/// Length of the well-formed UTF-8 sequence at `s[pos]`, or 0 when it is not one.
std::size_t utf8_length(std::string_view s, std::size_t pos);

/// Whether `c` continues a multi-byte UTF-8 sequence (10xxxxxx) rather than starting a character.
inline bool is_utf8_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

/// Characters of `s` as a terminal columns them: every byte that is not a continuation byte.
std::size_t count_code_points(std::string_view s);

}  // namespace mmlab
