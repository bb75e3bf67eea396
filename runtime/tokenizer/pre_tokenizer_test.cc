// Expected splits are worked out by hand from the regexes (see
// pre_tokenizer.h); the conformance test compares the same code with HF's
// own output on many more strings.
#include "runtime/tokenizer/pre_tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> Split(PreTokenizer kind, std::string_view text) {
  std::vector<std::string_view> pieces;
  PreTokenize(kind, text, &pieces);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

TEST(Gpt2PreTokenizerTest, WordsTakeTheSpaceBeforeThem) {
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "Hello, world!"),
              ElementsAre("Hello", ",", " world", "!"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, ""), IsEmpty());
}

TEST(Gpt2PreTokenizerTest, WhitespaceRunLeavesItsLastCharacterForTheNextWord) {
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "a   b"), ElementsAre("a", "  ", " b"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "a\t\tb"), ElementsAre("a", "\t", "\t", "b"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "a \n b"), ElementsAre("a", " \n", " b"));
  // At the end of the text the whole run is one piece.
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "end   "), ElementsAre("end", "   "));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "   "), ElementsAre("   "));
  // Only an ASCII space joins the next word; other spaces stand alone.
  EXPECT_THAT(Split(PreTokenizer::kGpt2,
                    "a\xC2\xA0"
                    "b"),
              ElementsAre("a", "\xC2\xA0", "b"));
}

TEST(Gpt2PreTokenizerTest, ContractionsAreCaseSensitive) {
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "it's we'll"), ElementsAre("it", "'s", " we", "'ll"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "IT'S"), ElementsAre("IT", "'", "S"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, " 'tis"), ElementsAre(" '", "tis"));
}

TEST(Gpt2PreTokenizerTest, ClassesDoNotMix) {
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "abc123def"), ElementsAre("abc", "123", "def"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "x += 12;"), ElementsAre("x", " +=", " 12", ";"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "caf\xC3\xA9 na\xC3\xAFve"),
              ElementsAre("caf\xC3\xA9", " na\xC3\xAFve"));
  // A combining mark is neither letter nor number.
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "e\xCC\x81t"), ElementsAre("e", "\xCC\x81", "t"));
}

TEST(Gpt2PreTokenizerTest, InvalidBytesAreOtherCharacters) {
  EXPECT_THAT(Split(PreTokenizer::kGpt2,
                    "a\xFF\xFE"
                    "b"),
              ElementsAre("a", "\xFF\xFE", "b"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, " \xE4\xB8"), ElementsAre(" \xE4\xB8"));
}

TEST(SmolLmPreTokenizerTest, DigitsStandAloneAndSplitTheText) {
  EXPECT_THAT(Split(PreTokenizer::kSmolLm, "1234 digits"),
              ElementsAre("1", "2", "3", "4", " digits"));
  // Without the digit the two spaces end the text they are in.
  EXPECT_THAT(Split(PreTokenizer::kSmolLm, "a  1"), ElementsAre("a", "  ", "1"));
  EXPECT_THAT(Split(PreTokenizer::kGpt2, "a  1"), ElementsAre("a", " ", " 1"));
  // Any Unicode number counts, e.g. ARABIC-INDIC DIGIT THREE and VULGAR FRACTION ONE HALF.
  EXPECT_THAT(Split(PreTokenizer::kSmolLm, "x\xD9\xA3\xC2\xBDy"),
              ElementsAre("x", "\xD9\xA3", "\xC2\xBD", "y"));
}

TEST(Llama3PreTokenizerTest, ContractionsIgnoreCase) {
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "IT'Sok it'sok"),
              ElementsAre("IT", "'S", "ok", " it", "'s", "ok"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "WE'LLgo"), ElementsAre("WE", "'LL", "go"));
  // U+017F LATIN SMALL LETTER LONG S folds to s.
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "it'\xC5\xBFt"), ElementsAre("it", "'\xC5\xBF", "t"));
}

TEST(Llama3PreTokenizerTest, OnePunctuationOrSpaceJoinsAWord) {
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "(hello) .x"), ElementsAre("(hello", ")", " .", "x"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "\thello"), ElementsAre("\thello"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "\nhello"), ElementsAre("\n", "hello"));
}

TEST(Llama3PreTokenizerTest, NumbersInGroupsOfThree) {
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "abc 12345"), ElementsAre("abc", " ", "123", "45"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "1234567"), ElementsAre("123", "456", "7"));
}

TEST(Llama3PreTokenizerTest, NewlinesStayWithWhatPrecedesThem) {
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "foo.\n\nbar"), ElementsAre("foo", ".\n\n", "bar"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "a\n\n  x"), ElementsAre("a", "\n\n", " ", " x"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "a \r\n b"), ElementsAre("a", " \r\n", " b"));
  EXPECT_THAT(Split(PreTokenizer::kLlama3, "a   b"), ElementsAre("a", "  ", " b"));
}

}  // namespace
}  // namespace tierserve
