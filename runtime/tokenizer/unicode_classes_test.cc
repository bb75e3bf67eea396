#include "runtime/tokenizer/unicode_classes.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tierserve {
namespace {

TEST(UnicodeClassesTest, SpotChecks) {
  EXPECT_EQ(ClassifyCodePoint(U'a'), CharClass::kLetter);
  EXPECT_EQ(ClassifyCodePoint(U'\u4E2D'), CharClass::kLetter);  // CJK
  EXPECT_EQ(ClassifyCodePoint(U'\u02B0'), CharClass::kLetter);  // Lm
  EXPECT_EQ(ClassifyCodePoint(U'\u0301'), CharClass::kOther);   // combining mark
  EXPECT_EQ(ClassifyCodePoint(U'7'), CharClass::kNumber);
  EXPECT_EQ(ClassifyCodePoint(U'\u00B2'), CharClass::kNumber);  // No
  EXPECT_EQ(ClassifyCodePoint(U'\u216B'), CharClass::kNumber);  // Nl
  EXPECT_EQ(ClassifyCodePoint(U'\u00A0'), CharClass::kWhitespace);
  EXPECT_EQ(ClassifyCodePoint(U'\u0085'), CharClass::kWhitespace);
  EXPECT_EQ(ClassifyCodePoint(U'\u200B'), CharClass::kOther);  // zero width space is not \s
  EXPECT_EQ(ClassifyCodePoint(U'\u180E'), CharClass::kOther);
  EXPECT_EQ(ClassifyCodePoint(U'\U0001F642'), CharClass::kOther);
  EXPECT_EQ(ClassifyCodePoint(U'\U000105C0'), CharClass::kLetter);  // Unicode 16 (Todhri)
  EXPECT_EQ(ClassifyCodePoint(U'\U000116D0'), CharClass::kNumber);  // Unicode 16 digit
  EXPECT_TRUE(IsDigitsPreTokenizerNumeric(U'\u0663'));
  EXPECT_TRUE(IsDigitsPreTokenizerNumeric(U'\u00BD'));
  EXPECT_TRUE(IsDigitsPreTokenizerNumeric(U'\U00011DE0'));  // Unicode 17 digit
  EXPECT_FALSE(IsDigitsPreTokenizerNumeric(U'a'));
}

// Every scalar value against the classes measured in HF tokenizers
// (tests/data/tokenizers/unicode_classes.json, from make_tokenizer_goldens.py).
TEST(UnicodeClassesTest, EveryCodePointMatchesHfTokenizers) {
  std::ifstream in("tests/data/tokenizers/unicode_classes.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json tables = nlohmann::json::parse(text.str(), nullptr, false);
  ASSERT_TRUE(tables.is_object()) << "cannot read tests/data/tokenizers/unicode_classes.json";

  auto expand = [&](const char* name) {
    std::vector<bool> member(0x110000, false);
    for (const auto& range : tables[name]) {
      for (uint32_t c = range[0].get<uint32_t>(); c <= range[1].get<uint32_t>(); ++c)
        member[c] = true;
    }
    return member;
  };
  const std::vector<bool> whitespace = expand("whitespace");
  const std::vector<bool> letter = expand("letter");
  const std::vector<bool> number = expand("number");
  const std::vector<bool> digit = expand("digits_pre_tokenizer");

  int mismatches = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    const CharClass expected = whitespace[c] ? CharClass::kWhitespace
                               : letter[c]   ? CharClass::kLetter
                               : number[c]   ? CharClass::kNumber
                                             : CharClass::kOther;
    if (ClassifyCodePoint(c) != expected || IsDigitsPreTokenizerNumeric(c) != digit[c]) {
      if (++mismatches <= 10)
        ADD_FAILURE() << "code point U+" << std::hex << static_cast<uint32_t>(c);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace tierserve
