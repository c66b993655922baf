// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/json_syntax.h"

#include <cmath>
#include <cstdio>
#include <locale>
#include <sstream>
#include <vector>

#include "core/util/utf8.h"

namespace mmlab::config_detail {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}

// The character at `at`, as a message shows it.
std::string shown(std::string_view t, std::size_t at) {
  const auto c = static_cast<unsigned char>(t[at]);
  char buf[48];
  if (c < 0x20 || c == 0x7F) {
    std::snprintf(buf, sizeof(buf), "a control character (U+%04X)", c);
    return buf;
  }
  if (c < 0x80) return "'" + std::string(1, static_cast<char>(c)) + "'";
  const std::size_t n = utf8_length(t, at);
  if (n == 0) return "a byte that is not UTF-8";
  return "'" + std::string(t.substr(at, n)) + "'";
}

// Whether a well-formed JSON number is below DBL_MAX in magnitude; read in the "C" locale, as a
// config file means '.' wherever it is read.
bool fits_double(std::string_view number) {
  std::istringstream in{std::string(number)};
  in.imbue(std::locale::classic());
  double value = 0;
  in >> value;
  return !in.fail() && std::isfinite(value);
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : t_(text) {}

  std::optional<JsonSyntaxError> run() {
    if (t_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;
    skip_space();
    bool expect_value = true;
    while (!error_) {
      skip_space();
      if (expect_value) {
        if (!open_or_scalar()) break;
        expect_value = !stack_.empty() && just_opened_;
        just_opened_ = false;
        continue;
      }
      if (stack_.empty()) {
        if (!at_end()) fail(i_, "unexpected " + shown(t_, i_) + " after the end of the JSON value");
        break;
      }
      const Open top = stack_.back();
      if (at_end()) {
        fail(i_, ends_inside(top.object ? "',' or '}'" : "',' or ']'"));
        break;
      }
      const char c = t_[i_];
      if (c == ',') {
        ++i_;
        skip_space();
        if (top.object) {
          if (!key(/*first=*/false)) break;
        } else if (!at_end() && t_[i_] == ']') {
          fail(i_, "expected a value after ',' (JSON allows no comma before ']')");
          break;
        }
        expect_value = true;
      } else if (c == (top.object ? '}' : ']')) {
        ++i_;
        stack_.pop_back();
      } else {
        fail(i_, top.object ? "expected ',' or '}' after an object member"
                            : "expected ',' or ']' after a list element");
      }
    }
    return error_;
  }

 private:
  struct Open {
    bool object;
    std::size_t at;
  };

  bool at_end() const { return i_ >= t_.size(); }
  void skip_space() {
    while (!at_end() && is_space(t_[i_])) ++i_;
  }

  bool fail(std::size_t at, std::string what) {
    if (!error_) {
      error_ = position_of(t_, at);
      error_->what = std::move(what);
    }
    return false;
  }

  std::string ends_inside(const std::string& expected) const {
    const Open& top = stack_.back();
    const JsonSyntaxError where = position_of(t_, top.at);
    return "the text ends inside the " + std::string(top.object ? "object" : "list") +
           " that opens at " + std::to_string(where.line) + ":" + std::to_string(where.column) +
           "; expected " + expected;
  }

  // At the start of a value: opens an object or list (just_opened_ when it is not empty at once)
  // or scans a scalar.
  bool open_or_scalar() {
    if (at_end()) {
      return fail(i_, stack_.empty() ? "the text is empty" : ends_inside("a value"));
    }
    const char c = t_[i_];
    if (c == '{' || c == '[') {
      const bool object = c == '{';
      stack_.push_back({object, i_});
      ++i_;
      skip_space();
      if (!at_end() && t_[i_] == (object ? '}' : ']')) {
        ++i_;
        stack_.pop_back();
        return true;
      }
      if (object) {
        if (!key(/*first=*/true)) return false;
      } else if (at_end()) {
        return fail(i_, ends_inside("a value or ']'"));
      }
      just_opened_ = true;
      return true;
    }
    if (c == '"') return string(nullptr);
    if (c == '-' || is_digit(c)) return number();
    if (is_word_char(c)) return word();
    if (c == '\'') return fail(i_, "strings must be in double quotes, not single quotes");
    if (c == '/') return fail(i_, "JSON does not allow comments");
    return fail(i_,
                "expected a value (a string, number, object, list, true, false or null), found " +
                    shown(t_, i_));
  }

  // An object's key and its ':', with the scan at the key.
  bool key(bool first) {
    const std::string either = first ? " or '}'" : "";
    if (at_end()) return fail(i_, ends_inside("a key in double quotes" + either));
    const char c = t_[i_];
    if (c == '}' && !first) {
      return fail(i_,
                  "expected a key in double quotes after ',' (JSON allows no comma before '}')");
    }
    if (c == '\'') return fail(i_, "keys must be in double quotes, not single quotes");
    if (c == '/') return fail(i_, "JSON does not allow comments");
    if (c != '"') return fail(i_, "expected a key in double quotes" + either);
    std::string name;
    if (!string(&name)) return false;
    skip_space();
    if (at_end()) return fail(i_, ends_inside("':' after the key \"" + name + "\""));
    if (t_[i_] != ':') return fail(i_, "expected ':' after the key \"" + name + "\"");
    ++i_;
    return true;
  }

  // A string, with the scan at its opening quote; `raw` gets its text as written.
  bool string(std::string* raw) {
    const std::size_t start = i_++;
    while (true) {
      if (at_end()) return fail(start, "this string is never closed (a '\"' is missing)");
      const char c = t_[i_];
      const auto u = static_cast<unsigned char>(c);
      if (c == '"') {
        if (raw) *raw = std::string(t_.substr(start + 1, i_ - start - 1));
        ++i_;
        return true;
      }
      if (c == '\\') {
        if (!escape()) return false;
      } else if (c == '\n' || c == '\r') {
        return fail(i_, "a string runs into the end of the line (is a closing '\"' missing?)");
      } else if (u < 0x20) {
        return fail(i_, "a string holds " + shown(t_, i_) + "; write it as an escape such as \\t");
      } else if (u >= 0x80) {
        const std::size_t n = utf8_length(t_, i_);
        if (n == 0) return fail(i_, "a string holds bytes that are not valid UTF-8");
        i_ += n;
      } else {
        ++i_;
      }
    }
  }

  // A backslash escape inside a string, with the scan at the backslash.
  bool escape() {
    const std::size_t at = i_++;
    if (at_end()) return fail(at, "the text ends inside an escape");
    const char e = t_[i_];
    if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
        e == 't') {
      ++i_;
      return true;
    }
    if (e != 'u') {
      const auto u = static_cast<unsigned char>(e);
      const std::string what = u > 0x20 && u < 0x7F ? "'\\" + std::string(1, e) + "'"
                                                    : "a backslash before " + shown(t_, i_);
      return fail(at, what + " is not an escape JSON knows (write a backslash as \\\\)");
    }
    unsigned cp = 0;
    if (!hex4(i_ + 1, &cp)) return fail(at, "'\\u' must be followed by four hex digits");
    i_ += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return fail(at, "this \\u escape is the second half of a surrogate pair without the first");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      unsigned low = 0;
      if (t_.substr(i_, 2) != "\\u" || !hex4(i_ + 2, &low) || low < 0xDC00 || low > 0xDFFF) {
        return fail(at, "this \\u escape is the first half of a surrogate pair without the second");
      }
      i_ += 6;
    }
    return true;
  }

  bool hex4(std::size_t at, unsigned* out) const {
    if (at + 4 > t_.size()) return false;
    unsigned v = 0;
    for (std::size_t k = at; k < at + 4; ++k) {
      if (!is_hex(t_[k])) return false;
      const char h = t_[k];
      v = v * 16 + static_cast<unsigned>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    *out = v;
    return true;
  }

  // RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool number() {
    const std::size_t start = i_;
    if (t_[i_] == '-') {
      ++i_;
      if (at_end() || !is_digit(t_[i_])) return fail(start, "'-' must be followed by a digit");
    }
    // The decimal exponent of the leading digit, to find numbers too large for a double.
    long magnitude = 0;
    bool nonzero = false;
    if (t_[i_] == '0') {
      ++i_;
      if (!at_end() && is_digit(t_[i_])) return fail(start, "a number must not start with 0");
    } else {
      while (!at_end() && is_digit(t_[i_])) {
        magnitude += nonzero ? 1 : 0;
        nonzero = true;
        ++i_;
      }
    }
    if (!at_end() && t_[i_] == '.') {
      ++i_;
      if (at_end() || !is_digit(t_[i_])) return fail(i_, "expected a digit after the '.'");
      long place = 0;
      while (!at_end() && is_digit(t_[i_])) {
        --place;
        if (!nonzero && t_[i_] != '0') {
          nonzero = true;
          magnitude = place;
        }
        ++i_;
      }
    }
    if (!at_end() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (!at_end() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      const bool negative = t_[i_ - 1] == '-';
      if (at_end() || !is_digit(t_[i_])) return fail(i_, "expected a digit in the exponent");
      long exponent = 0;
      while (!at_end() && is_digit(t_[i_])) {
        if (exponent < 100000) exponent = exponent * 10 + (t_[i_] - '0');
        ++i_;
      }
      magnitude += negative ? -exponent : exponent;
    }
    // nlohmann refuses what does not fit a double (up to 1.797...e308).
    if (nonzero && magnitude >= 308 && !fits_double(t_.substr(start, i_ - start))) {
      return fail(start,
                  "the number " + std::string(t_.substr(start, i_ - start)) + " is too large");
    }
    return true;
  }

  bool word() {
    const std::size_t start = i_;
    while (!at_end() && is_word_char(t_[i_])) ++i_;
    const std::string_view w = t_.substr(start, i_ - start);
    if (w == "true" || w == "false" || w == "null") return true;
    return fail(start, "unknown word '" + std::string(w) +
                           "' (write text in double quotes; the only bare words are true, false "
                           "and null)");
  }

  std::string_view t_;
  std::size_t i_ = 0;
  std::vector<Open> stack_;
  bool just_opened_ = false;  // open_or_scalar opened a container that awaits its first element
  std::optional<JsonSyntaxError> error_;
};

}  // namespace

JsonSyntaxError position_of(std::string_view text, std::size_t offset) {
  JsonSyntaxError p;
  std::size_t line_start = 0;
  offset = std::min(offset, text.size());
  for (std::size_t k = 0; k < offset; ++k) {
    if (text[k] == '\n') {
      ++p.line;
      line_start = k + 1;
    }
  }
  // A byte order mark is not a column anyone can see.
  if (line_start == 0 && text.substr(0, 3) == "\xEF\xBB\xBF")
    line_start = std::min<std::size_t>(3, offset);
  for (std::size_t k = line_start; k < offset; ++k) {
    if (!is_utf8_continuation(text[k])) ++p.column;
  }
  return p;
}

std::optional<JsonSyntaxError> find_json_syntax_error(std::string_view text) {
  return Scanner(text).run();
}

}  // namespace mmlab::config_detail
