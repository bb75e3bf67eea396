#include "runtime/tokenizer/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8Test, DecodesEachLength) {
  EXPECT_EQ(DecodeUtf8At("a", 0).code_point, U'a');
  const Utf8Char e = DecodeUtf8At("\xC3\xA9", 0);
  EXPECT_TRUE(e.valid);
  EXPECT_EQ(e.code_point, U'\u00E9');
  EXPECT_EQ(e.len, 2u);
  const Utf8Char cjk = DecodeUtf8At("x\xE4\xB8\xAD", 1);
  EXPECT_EQ(cjk.code_point, U'\u4E2D');
  EXPECT_EQ(cjk.len, 3u);
  const Utf8Char emoji = DecodeUtf8At("\xF0\x9F\x99\x82", 0);
  EXPECT_EQ(emoji.code_point, U'\U0001F642');
  EXPECT_EQ(emoji.len, 4u);
}

TEST(Utf8Test, RejectsOverlongSurrogatesAndOutOfRange) {
  for (const char* bad : {"\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                          "\xF8\x88\x80\x80\x80", "\x80", "\xFF"}) {
    const Utf8Char c = DecodeUtf8At(bad, 0);
    EXPECT_FALSE(c.valid) << bad;
    EXPECT_EQ(c.len, 1u) << bad;  // the lead byte alone is the maximal valid prefix
  }
  const Utf8Char truncated = DecodeUtf8At("\xF0\x9F\x98", 0);
  EXPECT_FALSE(truncated.valid);
  EXPECT_EQ(truncated.len, 3u);
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  // The example of the Unicode Standard, §3.9 (U+FFFD substitution of maximal subparts).
  EXPECT_EQ(LossyUtf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  EXPECT_EQ(LossyUtf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(LossyUtf8("\xF0\x9F\x98"), kFffd);
  EXPECT_EQ(LossyUtf8("ok \xE4\xB8\xAD\xF0\x9F\x99\x82"), "ok \xE4\xB8\xAD\xF0\x9F\x99\x82");
  EXPECT_EQ(LossyUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(LossyUtf8(""), "");
}

TEST(Utf8Test, AppendUtf8EncodesEachLength) {
  std::string s;
  for (char32_t cp : {U'a', U'\u00E9', U'\u4E2D', U'\U0001F642'}) AppendUtf8(cp, &s);
  EXPECT_EQ(s, "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x99\x82");
}

TEST(Utf8Test, IncompleteSuffixCountsOnlyBytesThatCanStillComplete) {
  EXPECT_EQ(IncompleteUtf8Suffix(""), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xF0"), 1u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xF0\x9F"), 2u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xF0\x9F\x99"), 3u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xF0\x9F\x99\x82"), 0u);  // complete
  EXPECT_EQ(IncompleteUtf8Suffix("a\xE4\xB8"), 2u);
  EXPECT_EQ(IncompleteUtf8Suffix("\xC3"), 1u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xE0\x80"), 0u);  // E0 80 can never be valid
  EXPECT_EQ(IncompleteUtf8Suffix("a\x80"), 0u);      // stray continuation byte
  EXPECT_EQ(IncompleteUtf8Suffix("a\xFF"), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("\xC3\xE4"), 1u);  // C3 is already broken; E4 may complete
}

}  // namespace
}  // namespace tierserve
