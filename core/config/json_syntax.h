// SPDX-License-Identifier: GPL-3.0-or-later
// Says where and why a text is not JSON, in words for people who edit config files by hand:
// "expected ',' or '}' after an object member" at line 12, column 5. nlohmann::json finds the
// same errors but words them for its own developers ("syntax error while parsing object -
// unexpected string literal; expected '}'"). Internal to core/config.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mmlab::config_detail {

struct JsonSyntaxError {
  std::size_t line = 1;    ///< 1-based
  std::size_t column = 1;  ///< 1-based, in characters (UTF-8 code points) from the line start
  std::string what;        ///< plain words, no final period: "expected ':' after the key \"a\""
};

/// The first reason `text` is not one JSON value (RFC 8259, as nlohmann::json::parse reads it: a
/// leading UTF-8 byte order mark is allowed, comments are not), or nothing when it is one.
std::optional<JsonSyntaxError> find_json_syntax_error(std::string_view text);

/// Line and column (as in JsonSyntaxError) of byte `offset` of `text`.
JsonSyntaxError position_of(std::string_view text, std::size_t offset);

}  // namespace mmlab::config_detail
