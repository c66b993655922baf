// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/field_rule.h"

#include <cstdio>

namespace mmlab {

namespace {

// 0, 0.5, 1e-05: the number as a reader writes it, without a trailing ".0".
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string with_note(const std::string& what, const std::string& note) {
  return note.empty() ? what : what + " (" + note + ")";
}

}  // namespace

FieldRule FieldRule::greater_than(double lo, const char* note) {
  FieldRule r;
  r.kind_ = Kind::kBound;
  r.lo_ = lo;
  r.lo_open_ = true;
  r.note_ = note ? note : "";
  return r;
}

FieldRule FieldRule::at_least(double lo, const char* note) {
  FieldRule r = greater_than(lo, note);
  r.lo_open_ = false;
  return r;
}

FieldRule FieldRule::between(double lo, double hi, const char* note) {
  FieldRule r = at_least(lo, note);
  r.kind_ = Kind::kBetween;
  r.hi_ = hi;
  r.has_hi_ = true;
  return r;
}

FieldRule FieldRule::interval(double lo, bool lo_open, double hi, bool hi_open) {
  FieldRule r = between(lo, hi);
  r.kind_ = Kind::kInterval;
  r.lo_open_ = lo_open;
  r.hi_open_ = hi_open;
  return r;
}

FieldRule FieldRule::one_of(std::initializer_list<const char*> words) {
  FieldRule r;
  r.kind_ = Kind::kOneOf;
  for (const char* w : words) r.words_.emplace_back(w);
  return r;
}

FieldRule FieldRule::required(const char* what) {
  FieldRule r;
  r.kind_ = Kind::kRequired;
  r.note_ = what;
  return r;
}

std::string FieldRule::describe() const {
  switch (kind_) {
    case Kind::kNone:
      return "";
    case Kind::kBound:
      return (lo_open_ ? "> " : ">= ") + number_text(lo_);
    case Kind::kBetween:
      return "between " + number_text(lo_) + " and " + number_text(hi_);
    case Kind::kInterval:
      return std::string("in ") + (lo_open_ ? "(" : "[") + number_text(lo_) + ", " +
             number_text(hi_) + (hi_open_ ? ")" : "]");
    case Kind::kOneOf: {
      std::string list;
      for (const auto& w : words_) list += (list.empty() ? "" : ", ") + w;
      return "one of " + list;
    }
    case Kind::kRequired:
      return "not empty";
  }
  return "";
}

std::optional<std::string> FieldRule::check(double value, const std::string& shown) const {
  if (kind_ != Kind::kBound && kind_ != Kind::kBetween && kind_ != Kind::kInterval) {
    return std::nullopt;
  }
  // Written so that NaN fails every bound.
  const bool above = lo_open_ ? value > lo_ : value >= lo_;
  const bool below = !has_hi_ || (hi_open_ ? value < hi_ : value <= hi_);
  if (above && below) return std::nullopt;
  return "must be " + with_note(describe(), note_) + ", got " + shown + ".";
}

std::optional<std::string> FieldRule::check(const std::string& value) const {
  if (kind_ == Kind::kRequired) {
    if (!value.empty()) return std::nullopt;
    return "must " + note_ + ".";
  }
  if (kind_ != Kind::kOneOf) return std::nullopt;
  for (const auto& w : words_) {
    if (value == w) return std::nullopt;
  }
  return "must be " + describe() + ", got \"" + value + "\".";
}

std::optional<double> FieldRule::lower_bound() const {
  if (kind_ == Kind::kBound || kind_ == Kind::kBetween || kind_ == Kind::kInterval) return lo_;
  return std::nullopt;
}

std::optional<double> FieldRule::upper_bound() const {
  if (has_hi_) return hi_;
  return std::nullopt;
}

}  // namespace mmlab
