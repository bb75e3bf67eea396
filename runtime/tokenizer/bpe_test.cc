#include "runtime/tokenizer/bpe.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A toy vocabulary: single letters a-e are ids 0-4, then the merged forms.
std::vector<std::string> Tokens() {
  return {"a", "b", "c", "d", "e", "ab", "bc", "abc", "aa", "aaaa", "aaaaaaaa"};
}

std::vector<int32_t> Encode(const BpeModel& model, std::string_view piece) {
  std::vector<int32_t> ids;
  model.Encode(piece, &ids);
  return ids;
}

TEST(BpeModelTest, MergesInRankOrder) {
  auto model = BpeModel::Build(Tokens(), {{"a", "b"}, {"ab", "c"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Encode(*model, "abc"), ElementsAre(7));  // ab, then abc
  EXPECT_THAT(Encode(*model, "abcab"), ElementsAre(7, 5));
  EXPECT_THAT(Encode(*model, "cab"), ElementsAre(2, 5));
  EXPECT_THAT(Encode(*model, "d"), ElementsAre(3));
}

TEST(BpeModelTest, HigherRankedPairWinsEvenToTheRight) {
  // "b c" outranks "a b", so "abc" becomes a + bc, and "ab"+"c" never applies.
  auto model = BpeModel::Build(Tokens(), {{"b", "c"}, {"a", "b"}, {"ab", "c"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Encode(*model, "abc"), ElementsAre(0, 6));
}

TEST(BpeModelTest, IgnoreMergesEmitsAWholeTokenDirectly) {
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"b", "c"}, {"a", "b"}, {"ab", "c"}};
  auto with = BpeModel::Build(Tokens(), merges, /*ignore_merges=*/true);
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_THAT(Encode(*with, "abc"), ElementsAre(7));
  EXPECT_THAT(Encode(*with, "abcd"), ElementsAre(0, 6, 3));  // not a token: merges as usual
}

TEST(BpeModelTest, EqualRanksMergeLeftmostFirst) {
  auto model = BpeModel::Build(Tokens(), {{"a", "a"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Encode(*model, "aaa"), ElementsAre(8, 0));
  EXPECT_THAT(Encode(*model, "aaaaa"), ElementsAre(8, 8, 0));
}

TEST(BpeModelTest, BytesWithoutATokenAreDropped) {
  auto model = BpeModel::Build(Tokens(), {{"a", "b"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  // The z is dropped before merging, so a and b become neighbours and merge,
  // as in HF (checked with tokenizers 0.23: "azb" -> [ab]).
  EXPECT_THAT(Encode(*model, "azb"), ElementsAre(5));
  EXPECT_THAT(Encode(*model, "zz"), ElementsAre());
}

TEST(BpeModelTest, LongWordsStayFast) {
  // 100000 a's with merges a+a, aa+aa, aaaa+aaaa: every rank-0 merge happens
  // before any rank-1 merge, so the result is 12500 tokens of eight a's.
  auto model = BpeModel::Build(Tokens(), {{"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<int32_t> ids = Encode(*model, std::string(100000, 'a'));
  ASSERT_EQ(ids.size(), 12500u);
  for (int32_t id : ids) ASSERT_EQ(id, 10);
}

TEST(BpeModelTest, ByteLevelSymbolsStandForBytes) {
  // "Ġ" (U+0120) stands for the space byte.
  auto model = BpeModel::Build({"\xC4\xA0", "t", "\xC4\xA0t"}, {{"\xC4\xA0", "t"}}, false);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(Encode(*model, " t"), ElementsAre(2));
  EXPECT_EQ(model->Find("\xC4\xA0t"), 2);
  EXPECT_EQ(model->Find(" t"), -1);
}

TEST(BpeModelTest, RejectsInconsistentInput) {
  auto unknown_side = BpeModel::Build(Tokens(), {{"a", "z"}}, false);
  EXPECT_THAT(unknown_side.status().message(), HasSubstr("\"z\""));
  auto unknown_result = BpeModel::Build(Tokens(), {{"c", "d"}}, false);
  EXPECT_THAT(unknown_result.status().message(),
              HasSubstr("\"cd\", which is not in the vocabulary"));
  auto duplicate = BpeModel::Build({"a", "b", "a"}, {}, false);
  EXPECT_THAT(duplicate.status().message(), HasSubstr("appears twice, as id 0 and as id 2"));
}

}  // namespace
}  // namespace tierserve
