// Tokenizer::FromVocab and the BPE tokenizer's Encode/Decode on hand-made
// vocabularies whose expected ids follow from the rules by hand.
#include "runtime/tokenizer/tokenizer.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/tokenizer/byte_level.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Ids 0-255 are the byte-level characters of the bytes 0-255, so the id of
// an unmerged ASCII character is its code.
BpeVocab ByteVocab() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteLevelUtf8(static_cast<uint8_t>(b)));
  return v;
}

std::unique_ptr<Tokenizer> Make(BpeVocab v) {
  auto t = Tokenizer::FromVocab(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(TokenizerTest, EncodesBytesAndMerges) {
  BpeVocab v = ByteVocab();
  v.tokens.push_back("ab");  // 256
  v.merges = {{"a", "b"}};
  auto t = Make(std::move(v));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("ab ab"), ElementsAre(256, ' ', 256));
  EXPECT_THAT(t->Encode("abc"), ElementsAre(256, 'c'));
  EXPECT_THAT(t->Encode(""), ElementsAre());
  EXPECT_EQ(t->vocab_size(), 257);
}

TEST(TokenizerTest, AddedTokensAreMatchedBeforePreTokenization) {
  BpeVocab v = ByteVocab();
  v.tokens.push_back("<|x|>");  // 256
  v.added.push_back({256, /*special=*/true});
  auto t = Make(std::move(v));
  ASSERT_NE(t, nullptr);
  // Without the added token " <" and "|" would have joined one piece.
  EXPECT_THAT(t->Encode("a <|x|>b"), ElementsAre('a', ' ', 256, 'b'));
  EXPECT_THAT(t->Encode("<|x|"), ElementsAre('<', '|', 'x', '|'));
  EXPECT_TRUE(t->IsSpecial(256));
  EXPECT_FALSE(t->IsSpecial('a'));
}

TEST(TokenizerTest, NonNormalizedAddedTokensAreMatchedFirst) {
  // HF tokenizers 0.23, "abcd": with "bc" normalized=false and "abc"
  // normalized=true -> a, bc, d; with the flags swapped -> abc, d.
  for (bool bc_normalized : {false, true}) {
    BpeVocab v = ByteVocab();
    v.tokens.push_back("bc");   // 256
    v.tokens.push_back("abc");  // 257
    v.added.push_back({256, false, bc_normalized});
    v.added.push_back({257, false, !bc_normalized});
    auto t = Make(std::move(v));
    ASSERT_NE(t, nullptr);
    if (bc_normalized) {
      EXPECT_THAT(t->Encode("abcd"), ElementsAre(257, 'd'));
    } else {
      EXPECT_THAT(t->Encode("abcd"), ElementsAre('a', 256, 'd'));
    }
  }
}

TEST(TokenizerTest, PrependsBosOnlyWhenAskedTo) {
  BpeVocab v = ByteVocab();
  v.tokens.push_back("<s>");  // 256
  v.added.push_back({256, true});
  v.bos_id = 256;
  v.add_bos = true;
  auto t = Make(std::move(v));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("a"), ElementsAre(256, 'a'));
  EXPECT_THAT(t->Encode("a", /*add_special=*/false), ElementsAre('a'));
  EXPECT_THAT(t->Encode(""), ElementsAre(256));
  EXPECT_EQ(t->bos_id(), 256);
  EXPECT_EQ(t->eos_id(), std::nullopt);
}

TEST(TokenizerTest, DecodeJoinsBytesThenReplacesInvalidSequences) {
  BpeVocab v = ByteVocab();
  v.tokens.push_back("<|end|>");  // 256, special
  v.tokens.push_back("<tool>");   // 257, not special
  v.added.push_back({256, true});
  v.added.push_back({257, false});
  auto t = Make(std::move(v));
  ASSERT_NE(t, nullptr);
  // "é" is C3 A9: two byte tokens that only make a character together.
  EXPECT_EQ(t->Decode({0xC3, 0xA9}), "\xC3\xA9");
  EXPECT_EQ(t->Decode({0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(t->Decode({'a', 0xC3, 'b'}),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(t->Decode({'a', 256, 257}), "a<|end|><tool>");
  EXPECT_EQ(t->Decode({'a', 256, 257}, /*skip_special=*/true), "a<tool>");
  EXPECT_EQ(t->Decode({'a', -1, 100000, 'b'}), "ab");  // unknown ids are skipped, as HF does
}

TEST(TokenizerTest, TokenAccessors) {
  auto t = Make(ByteVocab());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->TokenText(' '), "\xC4\xA0");
  EXPECT_EQ(t->TokenBytes(' '), " ");
  EXPECT_EQ(t->TokenId("\xC4\xA0"), ' ');
  EXPECT_EQ(t->TokenId(" "), std::nullopt);
  EXPECT_EQ(t->TokenText(-1), "");
  EXPECT_EQ(t->TokenText(256), "");
  EXPECT_EQ(t->TokenBytes(256), "");
  EXPECT_FALSE(t->IsSpecial(-5));
  EXPECT_EQ(t->chat_template(), "");
}

TEST(TokenizerTest, FromVocabRejectsInconsistentInput) {
  EXPECT_THAT(Tokenizer::FromVocab(BpeVocab{}).status().message(), HasSubstr("empty"));

  BpeVocab out_of_range = ByteVocab();
  out_of_range.added.push_back({300, true});
  EXPECT_THAT(Tokenizer::FromVocab(out_of_range).status().message(),
              HasSubstr("added token id 300 is outside the vocabulary [0, 256)"));

  BpeVocab twice = ByteVocab();
  twice.added = {{'a', true}, {'a', false}};
  EXPECT_THAT(Tokenizer::FromVocab(twice).status().message(), HasSubstr("listed twice"));

  BpeVocab bad_bos = ByteVocab();
  bad_bos.bos_id = -1;
  EXPECT_THAT(Tokenizer::FromVocab(bad_bos).status().message(), HasSubstr("bos id -1"));

  BpeVocab no_bos = ByteVocab();
  no_bos.add_bos = true;
  EXPECT_THAT(Tokenizer::FromVocab(no_bos).status().message(), HasSubstr("no bos token"));

  BpeVocab duplicate = ByteVocab();
  duplicate.tokens.push_back("a");
  EXPECT_THAT(Tokenizer::FromVocab(duplicate).status().message(), HasSubstr("appears twice"));

  BpeVocab bad_merge = ByteVocab();
  bad_merge.merges = {{"a", "b"}};
  EXPECT_THAT(Tokenizer::FromVocab(bad_merge).status().message(),
              HasSubstr("\"ab\", which is not in the vocabulary"));
}

TEST(TokenizerTest, IsSafeToShareAcrossThreads) {
  BpeVocab v = ByteVocab();
  v.tokens.push_back("ab");
  v.merges = {{"a", "b"}};
  auto t = Make(std::move(v));
  ASSERT_NE(t, nullptr);
  const std::string text = "ab ab abc, 123 abab";
  const std::vector<int32_t> expected = t->Encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k)
        ok[i] += t->Encode(text) == expected && t->Decode(expected) == text;
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ok[i], 200);
}

}  // namespace
}  // namespace tierserve
