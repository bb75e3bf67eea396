#include "runtime/tokenizer/byte_level.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

TEST(ByteLevelTest, KnownMappings) {
  EXPECT_EQ(ByteLevelCodePoint(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(ByteLevelCodePoint('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(ByteLevelCodePoint(0x00), U'\u0100');
  EXPECT_EQ(ByteLevelCodePoint(0x7F), U'\u0121');  // after 0x00-0x20 (33 bytes)
  EXPECT_EQ(ByteLevelCodePoint(0xA0), U'\u0142');
  EXPECT_EQ(ByteLevelCodePoint(0xAD), U'\u0143');  // the 68th and last remapped byte
  EXPECT_EQ(ByteLevelCodePoint('a'), U'a');
  EXPECT_EQ(ByteLevelCodePoint(0xE9), U'\u00E9');
  EXPECT_EQ(ByteLevelUtf8(' '), "\xC4\xA0");
}

TEST(ByteLevelTest, IsABijection) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = ByteLevelCodePoint(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(cp).second) << b;
    ASSERT_TRUE(ByteLevelByte(cp).has_value()) << b;
    EXPECT_EQ(*ByteLevelByte(cp), b);
  }
  EXPECT_FALSE(ByteLevelByte(U' ').has_value());
  EXPECT_FALSE(ByteLevelByte(U'\u0144').has_value());
  EXPECT_FALSE(ByteLevelByte(U'\u4E2D').has_value());
}

TEST(ByteLevelTest, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelToBytes(BytesToByteLevel(all)), all);
  EXPECT_EQ(BytesToByteLevel("a b\n"),
            "a\xC4\xA0"
            "b\xC4\x8A");
}

TEST(ByteLevelTest, TextOutsideTheAlphabetIsKeptAsIs) {
  // As HF's ByteLevel decoder: one foreign character keeps the whole token raw.
  EXPECT_EQ(ByteLevelToBytes("<a b>"), "<a b>");
  EXPECT_EQ(ByteLevelToBytes("\xC4\xA0x y"), "\xC4\xA0x y");
  // All characters in the alphabet: "é" (U+00E9) stands for the byte 0xE9.
  EXPECT_EQ(ByteLevelToBytes("a\xC3\xA9"), "a\xE9");
  EXPECT_EQ(ByteLevelToBytes("\xC4\xA0the"), " the");
}

}  // namespace
}  // namespace tierserve
