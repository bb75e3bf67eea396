#include "runtime/tokenizer/added_tokens.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

// Renders segments as "text|[id]|text" for compact expectations.
std::string Show(const AddedTokenMatcher& m, std::string_view text) {
  std::vector<TextSegment> segments;
  m.Split(text, &segments);
  std::string out;
  for (const TextSegment& s : segments) {
    if (!out.empty()) out += "|";
    out += s.id >= 0 ? "[" + std::to_string(s.id) + "]" : std::string(s.text);
  }
  return out;
}

TEST(AddedTokenMatcherTest, FindsTokensAnywhere) {
  const AddedTokenMatcher m({{"<|im_start|>", 1}, {"<|im_end|>", 2}});
  EXPECT_EQ(Show(m, "<|im_start|>user\nhi<|im_end|>"), "[1]|user\nhi|[2]");
  EXPECT_EQ(Show(m, "<|im_end|><|im_end|>"), "[2]|[2]");
  EXPECT_EQ(Show(m, "plain"), "plain");
  EXPECT_EQ(Show(m, "<|im_start|"), "<|im_start|");
  EXPECT_EQ(Show(m, ""), "");
}

TEST(AddedTokenMatcherTest, LeftmostThenLongest) {
  // Verified against HF tokenizers 0.23: "q<|a|>bc xyz" -> q, <|a|>b, c, ' ', xy, z.
  const AddedTokenMatcher m({{"<|a|>", 10}, {"<|a|>b", 11}, {"xy", 12}, {"yz", 13}});
  EXPECT_EQ(Show(m, "q<|a|>bc xyz"), "q|[11]|c |[12]|z");
}

TEST(AddedTokenMatcherTest, EmptyMatcherKeepsTextWhole) {
  const AddedTokenMatcher m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(Show(m, "<|im_start|>"), "<|im_start|>");
}

}  // namespace
}  // namespace tierserve
