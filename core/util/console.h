// SPDX-License-Identifier: GPL-3.0-or-later
// A sentence for the user on stderr, written in one piece. Processes that share a stderr (the
// ranks of `mmlab launch` and the launcher itself) would otherwise interleave each other's
// words: std::cerr is unbuffered, so `std::cerr << a << b` is a write per piece.
#pragma once

#include <string_view>

namespace mmlab {

/// Writes `line` and a newline to std::cerr as one string, which its unbuffered stream hands to
/// the kernel in one write (and which a test that swaps std::cerr's buffer still captures).
void write_stderr_line(std::string_view line);

}  // namespace mmlab
