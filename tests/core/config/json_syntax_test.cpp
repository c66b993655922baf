// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/config/json_syntax.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/config/experiment.h"

namespace mmlab {
namespace {

// The whole message parse_json_text gives for `text`, or "(valid)".
std::string message_for(const std::string& text) {
  try {
    parse_json_text(text, "x.json");
  } catch (const UserError& e) {
    EXPECT_EQ(e.message(), e.what()) << "no hint: the sentence says it all";
    return e.what();
  }
  return "(valid)";
}

struct Case {
  const char* text;
  const char* message;
};

TEST(JsonSyntax, OneSentenceWithLineColumnAndWhatIsWrong) {
  const Case cases[] = {
      {"", "x.json:1:1: not valid JSON: the text is empty."},
      {" \n\t", "x.json:2:2: not valid JSON: the text is empty."},
      {"{\n  \"name\": \"x\"\n  \"runs\": []\n}",
       "x.json:3:3: not valid JSON: expected ',' or '}' after an object member."},
      {"[1, 2 3]", "x.json:1:7: not valid JSON: expected ',' or ']' after a list element."},
      {"{\"a\": 1,}",
       "x.json:1:9: not valid JSON: expected a key in double quotes after ',' (JSON allows no "
       "comma before '}')."},
      {"[1, 2,]",
       "x.json:1:7: not valid JSON: expected a value after ',' (JSON allows no comma before "
       "']')."},
      {"{\"a\" 1}", "x.json:1:6: not valid JSON: expected ':' after the key \"a\"."},
      {"{\"a\": }",
       "x.json:1:7: not valid JSON: expected a value (a string, number, object, list, true, "
       "false or null), found '}'."},
      {"{a: 1}", "x.json:1:2: not valid JSON: expected a key in double quotes or '}'."},
      {"{'a': 1}", "x.json:1:2: not valid JSON: keys must be in double quotes, not single quotes."},
      {"{\"a\": 'b'}",
       "x.json:1:7: not valid JSON: strings must be in double quotes, not single quotes."},
      {"{\"family\": mamba}",
       "x.json:1:12: not valid JSON: unknown word 'mamba' (write text in double quotes; the only "
       "bare words are true, false and null)."},
      {"[True]",
       "x.json:1:2: not valid JSON: unknown word 'True' (write text in double quotes; the only "
       "bare words are true, false and null)."},
      {"{\n  // steps\n  \"a\": 1}", "x.json:2:3: not valid JSON: JSON does not allow comments."},
      {"{\"name\": \"x,\n \"runs\": []}",
       "x.json:1:13: not valid JSON: a string runs into the end of the line (is a closing '\"' "
       "missing?)."},
      {"{\"a\": \"b",
       "x.json:1:7: not valid JSON: this string is never closed (a '\"' is missing)."},
      {"{\"path\": \"C:\\data\"}",
       "x.json:1:13: not valid JSON: '\\d' is not an escape JSON knows (write a backslash as "
       "\\\\)."},
      {"[\"\\u12\"]", "x.json:1:3: not valid JSON: '\\u' must be followed by four hex digits."},
      {"[\"\\uD83D\"]",
       "x.json:1:3: not valid JSON: this \\u escape is the first half of a surrogate pair without "
       "the second."},
      {"[\"a\tb\"]",
       "x.json:1:4: not valid JSON: a string holds a control character (U+0009); write it as an "
       "escape such as \\t."},
      {"[\"\xC3\"]", "x.json:1:3: not valid JSON: a string holds bytes that are not valid UTF-8."},
      {"[01]", "x.json:1:2: not valid JSON: a number must not start with 0."},
      {"[-x]", "x.json:1:2: not valid JSON: '-' must be followed by a digit."},
      {"[1.]", "x.json:1:4: not valid JSON: expected a digit after the '.'."},
      {"[1e+]", "x.json:1:5: not valid JSON: expected a digit in the exponent."},
      {"[1e999]", "x.json:1:2: not valid JSON: the number 1e999 is too large."},
      {"[-1.8e308]", "x.json:1:2: not valid JSON: the number -1.8e308 is too large."},
      {"{} {}", "x.json:1:4: not valid JSON: unexpected '{' after the end of the JSON value."},
      {"{\n\"name\": \"x\",\n\"runs\": [\n",
       "x.json:4:1: not valid JSON: the text ends inside the list that opens at 3:9; expected a "
       "value or ']'."},
      {"{\"a\": [1, {\"b\": 2}",
       "x.json:1:19: not valid JSON: the text ends inside the list that opens at 1:7; expected "
       "',' or ']'."},
      {"{ \"name\": \"x\", ",
       "x.json:1:16: not valid JSON: the text ends inside the object that opens at 1:1; expected "
       "a key in double quotes."},
      {"{\"a\"",
       "x.json:1:5: not valid JSON: the text ends inside the object that opens at 1:1; "
       "expected ':' after the key \"a\"."},
      {"{\"a\":",
       "x.json:1:6: not valid JSON: the text ends inside the object that opens at 1:1; "
       "expected a value."},
      // Columns count characters, not bytes.
      {"{\"\xC3\xA9t\xC3\xA9\": 1 2}",
       "x.json:1:11: not valid JSON: expected ',' or '}' after an object member."},
      {"\xEF\xBB\xBF{\"a\" 1}", "x.json:1:6: not valid JSON: expected ':' after the key \"a\"."},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(message_for(c.text), c.message) << c.text;
    // Never nlohmann's own words.
    EXPECT_EQ(message_for(c.text).find("json.exception"), std::string::npos);
  }
}

TEST(JsonSyntax, FindsNoErrorWhereNlohmannFindsNone) {
  for (const char* text :
       {"{}", "[]",
        " {\"a\": [1, -2.5e-3, 0, 1E+2, true, false, null, \"\\u00e9\\uD83D\\uDE00\"]} ",
        "\"only a string\"", "\xEF\xBB\xBF[1]", "{\"a\": {\"b\": [[], {}]}, \"c\": \"\\\"\\\\/\"}",
        "1.7e308", "-1.797e308", "0.0000001e-400", "123456789012345678901234567890"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
    EXPECT_FALSE(config_detail::find_json_syntax_error(text).has_value());
    EXPECT_EQ(message_for(text), "(valid)");
  }
}

TEST(JsonSyntax, DeepNestingIsScannedWithoutRecursion) {
  const std::string deep = std::string(200000, '[') + "1" + std::string(199999, ']');
  const auto error = config_detail::find_json_syntax_error(deep);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->line, 1u);
  EXPECT_EQ(error->column, 400001u);
  EXPECT_EQ(error->what, "the text ends inside the list that opens at 1:1; expected ',' or ']'");
}

}  // namespace
}  // namespace mmlab
