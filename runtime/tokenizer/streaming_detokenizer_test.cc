#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace tierserve {
namespace {

// Ids 0-255 are single bytes; 256 is "<|end|>" (special); 257 is "Ġä¸" =
// the bytes 20 E4 B8, a space and the first two bytes of "中" (E4 B8 AD).
std::unique_ptr<Tokenizer> ByteTokenizer() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteLevelUtf8(static_cast<uint8_t>(b)));
  v.tokens.push_back("<|end|>");
  v.tokens.push_back(BytesToByteLevel(" \xE4\xB8"));
  v.added.push_back({256, /*special=*/true});
  auto t = Tokenizer::FromVocab(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

bool IsWholeUtf8(const std::string& s) { return LossyUtf8(s) == s && IncompleteUtf8Suffix(s) == 0; }

TEST(StreamingDetokenizerTest, HoldsBackSplitCharacters) {
  auto t = ByteTokenizer();
  StreamingDetokenizer d(t.get());
  // U+1F642 (4 bytes) arrives one byte per token.
  EXPECT_EQ(d.Push('a'), "a");
  EXPECT_EQ(d.Push(0xF0), "");
  EXPECT_EQ(d.Push(0x9F), "");
  EXPECT_EQ(d.Push(0x99), "");
  EXPECT_EQ(d.Push(0x82), "\xF0\x9F\x99\x82");
  // A token holding a space and two thirds of a CJK character.
  EXPECT_EQ(d.Push(257), " ");
  EXPECT_EQ(d.Push(0xAD), "\xE4\xB8\xAD");
  EXPECT_EQ(d.Finish(), "");
}

TEST(StreamingDetokenizerTest, EveryDeltaIsWholeUtf8AndTheyAddUpToDecode) {
  auto t = ByteTokenizer();
  // Emoji with ZWJ and skin tone, a flag, CJK, Arabic, combining marks,
  // each byte its own token.
  const std::string text =
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xF0\x9F\x8F\xBD "
      "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 "
      "\xE4\xBD\xA0\xE5\xA5\xBD \xD8\xB3\xD9\x84\xD8\xA7\xD9\x85 e\xCC\x81";
  std::vector<int32_t> ids;
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  StreamingDetokenizer d(t.get());
  std::string joined;
  for (int32_t id : ids) {
    const std::string delta = d.Push(id);
    EXPECT_TRUE(IsWholeUtf8(delta)) << "after id " << id;
    joined += delta;
  }
  joined += d.Finish();
  EXPECT_EQ(joined, text);
  EXPECT_EQ(joined, t->Decode(ids));
}

// SmolLM2 splits emoji, CJK and other multi-byte characters across tokens.
TEST(StreamingDetokenizerTest, SmolLm2OnTrickyStrings) {
  auto t = Tokenizer::FromTokenizerJson("tests/data/tokenizers/smollm2/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  std::ifstream in("tests/data/tokenizers/tricky_strings.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json strings = nlohmann::json::parse(text.str(), nullptr, false);
  ASSERT_TRUE(strings.is_object());
  int held_back = 0;  // pushes that returned less than the token's bytes
  for (const auto& s : strings["strings"]) {
    const std::vector<int32_t> ids = (*t)->Encode(s.get<std::string>());
    StreamingDetokenizer d(t->get());
    std::string joined;
    for (int32_t id : ids) {
      const std::string delta = d.Push(id);
      EXPECT_TRUE(IsWholeUtf8(delta)) << s.dump();
      held_back += delta.empty() && !(*t)->IsSpecial(id);
      joined += delta;
    }
    joined += d.Finish();
    EXPECT_EQ(joined, (*t)->Decode(ids, /*skip_special=*/true)) << s.dump();
  }
  EXPECT_GT(held_back, 10);  // the strings do split characters across tokens
}

TEST(StreamingDetokenizerTest, InvalidBytesBecomeReplacementCharacters) {
  auto t = ByteTokenizer();
  StreamingDetokenizer d(t.get());
  EXPECT_EQ(d.Push(0xFF), "\xEF\xBF\xBD");  // can never start a character
  EXPECT_EQ(d.Push(0xE4), "");              // may still complete...
  EXPECT_EQ(d.Push('x'), "\xEF\xBF\xBDx");  // ...but does not
  EXPECT_EQ(d.Push(0xE4), "");
  EXPECT_EQ(d.Push(0xB8), "");
  EXPECT_EQ(d.Finish(), "\xEF\xBF\xBD");  // cut off at the end
  // The same bytes decoded at once give the same text.
  EXPECT_EQ(t->Decode({0xFF, 0xE4, 'x', 0xE4, 0xB8}), "\xEF\xBF\xBD\xEF\xBF\xBDx\xEF\xBF\xBD");
}

TEST(StreamingDetokenizerTest, SkipsSpecialTokensUnlessAskedNotTo) {
  auto t = ByteTokenizer();
  StreamingDetokenizer skipping(t.get());
  EXPECT_EQ(skipping.Push('a'), "a");
  EXPECT_EQ(skipping.Push(256), "");
  StreamingDetokenizer keeping(t.get(), /*skip_special=*/false);
  EXPECT_EQ(keeping.Push(256), "<|end|>");
  EXPECT_EQ(keeping.Push(-1), "");  // out of range: nothing
}

}  // namespace
}  // namespace tierserve
