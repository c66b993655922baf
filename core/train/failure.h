// SPDX-License-Identifier: GPL-3.0-or-later
// Turning an exception into the one sentence a user sees (and the run's stored error text): a
// UserError says itself; anything else is named by what was being done, without the library's
// own text (LibTorch's stack traces, SQLite's or nlohmann's internals), which only MMLAB_DEBUG=1
// prints.
#pragma once

#include <exception>
#include <string>

namespace mmlab {

/// One sentence (plus a hint) for `e`, thrown while `doing` ("loading the checkpoint X",
/// "training step 12", …). A UserError's own text is returned unchanged.
std::string describe_failure(const std::exception& e, const std::string& doing);

/// True when MMLAB_DEBUG is set to something other than "" or "0": failures then also print the
/// library's full text on stderr.
bool debug_enabled();

}  // namespace mmlab
