// SPDX-License-Identifier: GPL-3.0-or-later
// The rule a config field's value must satisfy (a bound, a range, a list of words), declared with
// the field in config_fields.h. The same rule checks the value at load, writes its message for
// `mmlab validate` and the studio, and gives the studio's form its limits.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace mmlab {

class FieldRule {
 public:
  /// No rule: every value of the field's type is valid.
  FieldRule() = default;

  /// value > lo.
  static FieldRule greater_than(double lo, const char* note = nullptr);
  /// value >= lo.
  static FieldRule at_least(double lo, const char* note = nullptr);
  /// lo <= value <= hi, worded "between lo and hi".
  static FieldRule between(double lo, double hi, const char* note = nullptr);
  /// An interval with open or closed ends, worded as one: "[0, 1)", "(0, 1]".
  static FieldRule interval(double lo, bool lo_open, double hi, bool hi_open);
  /// One of these words.
  static FieldRule one_of(std::initializer_list<const char*> words);
  /// A non-empty text; `what` completes "must …" ("name a corpus").
  static FieldRule required(const char* what);

  /// The problem with a number, "must be > 0, got 0."; nothing when the value satisfies the rule.
  std::optional<std::string> check(double value, const std::string& shown) const;
  /// The problem with a text, "must be one of a, b, got \"c\"."; nothing when it is valid.
  std::optional<std::string> check(const std::string& value) const;

  /// The lower bound of a number (for a form's range); nothing when there is none.
  std::optional<double> lower_bound() const;
  /// Whether the lower bound itself is excluded ("> 0").
  bool lower_open() const { return lo_open_; }
  /// The upper bound of a number; nothing when there is none.
  std::optional<double> upper_bound() const;
  /// The valid words of a one_of rule, else empty.
  const std::vector<std::string>& words() const { return words_; }
  /// The rule in words, "> 0", "between 0 and 1", "one of a, b"; "" for no rule.
  std::string describe() const;

 private:
  enum class Kind { kNone, kBound, kBetween, kInterval, kOneOf, kRequired };
  Kind kind_ = Kind::kNone;
  double lo_ = 0, hi_ = 0;
  bool lo_open_ = false, hi_open_ = false;
  bool has_hi_ = false;
  std::string note_;
  std::vector<std::string> words_;
};

}  // namespace mmlab
