// Conformance with HF `tokenizers`: for every string of
// tests/data/tokenizers/tricky_strings.json, the ids must equal those HF
// produced (tests/data/tokenizers/golden_ids.json, written by
// tests/conformance/make_tokenizer_goldens.py), the decodes must equal HF's,
// decoding must give back the input, and the pre-tokenizer alone must split
// each string into the same pieces as HF's. The same ids are required for
// 300 seeded random strings of mixed characters and special tokens.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {
namespace {

using json = nlohmann::json;

json LoadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ConformanceTest, IdsAndDecodesMatchHfTokenizers) {
  const json goldens = LoadJson("tests/data/tokenizers/golden_ids.json");
  ASSERT_TRUE(goldens.is_object()) << "cannot read tests/data/tokenizers/golden_ids.json";
  const json& entry = goldens["tokenizers"][GetParam()];
  ASSERT_TRUE(entry.is_object());
  auto tokenizer = Tokenizer::FromTokenizerJson(entry["path"].get<std::string>());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& tok = **tokenizer;

  const json& cases = entry["cases"];
  ASSERT_GE(cases.size(), 40u);
  for (const json& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/true);
    EXPECT_EQ(ids, expected) << "text: " << json(text).dump();
    EXPECT_EQ(tok.Decode(expected, /*skip_special=*/false), c["decode"].get<std::string>())
        << "text: " << json(text).dump();
    EXPECT_EQ(tok.Decode(expected, /*skip_special=*/true),
              c["decode_skip_special"].get<std::string>())
        << "text: " << json(text).dump();
    EXPECT_EQ(tok.Decode(tok.Encode(text, /*add_special=*/false), /*skip_special=*/false), text)
        << "text: " << json(text).dump();
  }
}

TEST_P(ConformanceTest, RandomStringsMatchHfTokenizers) {
  const json goldens = LoadJson("tests/data/tokenizers/golden_ids.json");
  ASSERT_TRUE(goldens.is_object()) << "cannot read tests/data/tokenizers/golden_ids.json";
  const json& entry = goldens["tokenizers"][GetParam()];
  auto tokenizer = Tokenizer::FromTokenizerJson(entry["path"].get<std::string>());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const json& strings = goldens["random_strings"];
  const json& ids = entry["random_ids"];
  ASSERT_EQ(strings.size(), ids.size());
  ASSERT_GE(strings.size(), 100u);
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::string text = strings[i].get<std::string>();
    EXPECT_EQ((*tokenizer)->Encode(text), ids[i].get<std::vector<int32_t>>())
        << "text: " << json(text).dump();
    EXPECT_EQ((*tokenizer)->Decode((*tokenizer)->Encode(text, false)), text)
        << "text: " << json(text).dump();
  }
}

// The pre-tokenizer each tokenizer.json declares (checked by the parser tests).
PreTokenizer PreTokenizerOf(const std::string& name) {
  if (name == "smollm2") return PreTokenizer::kSmolLm;
  if (name == "llama3_style") return PreTokenizer::kLlama3;
  return PreTokenizer::kGpt2;
}

TEST_P(ConformanceTest, PreTokensMatchHfTokenizers) {
  const json goldens = LoadJson("tests/data/tokenizers/golden_ids.json");
  ASSERT_TRUE(goldens.is_object()) << "cannot read tests/data/tokenizers/golden_ids.json";
  const json& cases = goldens["tokenizers"][GetParam()]["cases"];
  ASSERT_GE(cases.size(), 40u);
  for (const json& c : cases) {
    const std::string text = c["text"].get<std::string>();
    std::vector<std::string_view> pieces;
    PreTokenize(PreTokenizerOf(GetParam()), text, &pieces);
    std::vector<std::string> byte_level;
    for (std::string_view p : pieces) byte_level.push_back(BytesToByteLevel(p));
    EXPECT_EQ(byte_level, c["pre_tokens"].get<std::vector<std::string>>())
        << "text: " << json(text).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, ConformanceTest,
                         ::testing::Values("smollm2", "small_bpe", "llama3_style"));

TEST(ConformanceDataTest, GoldensCoverEveryTrickyString) {
  const json strings = LoadJson("tests/data/tokenizers/tricky_strings.json");
  const json goldens = LoadJson("tests/data/tokenizers/golden_ids.json");
  ASSERT_TRUE(strings.is_object() && goldens.is_object());
  for (const auto& [name, entry] : goldens["tokenizers"].items()) {
    ASSERT_EQ(entry["cases"].size(), strings["strings"].size()) << name;
    for (size_t i = 0; i < entry["cases"].size(); ++i) {
      EXPECT_EQ(entry["cases"][i]["text"], strings["strings"][i]) << name << " case " << i;
    }
  }
}

}  // namespace
}  // namespace tierserve
