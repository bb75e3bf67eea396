// Tokenizer::FromTokenizerJson: the committed tokenizers, the accepted
// variants, and one test per kind of malformed or unsupported file.
#include <sys/resource.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// A minimal valid byte-level BPE: ids 0-255 are the bytes, 256 is "ĠĠ".
json MinimalTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[std::string(ByteLevelUtf8(static_cast<uint8_t>(b)))] = b;
  vocab["\xC4\xA0\xC4\xA0"] = 256;
  return {
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", json::array({json::array({"\xC4\xA0", "\xC4\xA0"})})}}},
  };
}

json ByteLevelStep(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class TokenizerJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        (std::string("tokjson_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const json& j) {
    return Tokenizer::FromTokenizerJson(Write("tokenizer.json", j.dump()));
  }
  std::string Error(const json& j) {
    auto t = Load(j);
    EXPECT_FALSE(t.ok());
    return std::string(t.status().message());
  }

  std::filesystem::path dir_;
};

TEST_F(TokenizerJsonTest, LoadsSmolLm2) {
  auto t = Tokenizer::FromTokenizerJson("tests/data/tokenizers/smollm2/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 49152);
  EXPECT_EQ((*t)->bos_id(), 1);  // <|im_start|>, from tokenizer_config.json
  EXPECT_EQ((*t)->eos_id(), 2);  // <|im_end|>
  // Ids from REFERENCE.md §5, checked against transformers and llama.cpp.
  EXPECT_THAT((*t)->Encode("Hello world"), ElementsAre(19556, 905));
  EXPECT_THAT((*t)->Encode("1234567 digits"), ElementsAre(33, 34, 35, 36, 37, 38, 39, 18638));
  EXPECT_THAT((*t)->chat_template(), HasSubstr("You are a helpful AI assistant named SmolLM"));
  EXPECT_TRUE((*t)->IsSpecial(1));
  EXPECT_EQ((*t)->TokenText(1), "<|im_start|>");
}

TEST_F(TokenizerJsonTest, LoadsTheSmallTokenizers) {
  auto small = Tokenizer::FromTokenizerJson("tests/data/tokenizers/small_bpe/tokenizer.json");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ((*small)->vocab_size(), 512);
  EXPECT_EQ((*small)->bos_id(), 0);
  EXPECT_EQ((*small)->eos_id(), 0);
  EXPECT_THAT((*small)->Encode("<|endoftext|>"), ElementsAre(0));  // no BOS added
  auto llama = Tokenizer::FromTokenizerJson("tests/data/tokenizers/llama3_style/tokenizer.json");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_THAT((*llama)->Encode(""), ElementsAre(0));  // the post-processor's BOS
  EXPECT_EQ((*llama)->eos_id(), 2);                   // <|eot_id|>
}

TEST_F(TokenizerJsonTest, MinimalFileWorks) {
  auto t = Load(MinimalTokenizer());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("a   b"), ElementsAre('a', 256, ' ', 'b'));
  EXPECT_EQ((*t)->bos_id(), std::nullopt);
  EXPECT_EQ((*t)->chat_template(), "");
}

TEST_F(TokenizerJsonTest, LegacyStringMergesEqualPairMerges) {
  json j = MinimalTokenizer();
  j["model"]["merges"] = json::array({"\xC4\xA0 \xC4\xA0"});
  auto t = Load(j);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("a   b"), ElementsAre('a', 256, ' ', 'b'));
}

TEST_F(TokenizerJsonTest, PreTokenizerVariants) {
  // "a  1": GPT-2 keeps one space for " 1"; the Digits step isolates the 1
  // first, so both spaces form "ĠĠ"; Llama-3 splits like GPT-2 here but the
  // digit stands alone.
  json gpt2 = MinimalTokenizer();
  auto t = Load(gpt2);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("a  1"), ElementsAre('a', ' ', ' ', '1'));

  json smollm = MinimalTokenizer();
  smollm["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevelStep(true)}}};
  t = Load(smollm);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("a  1"), ElementsAre('a', 256, '1'));

  json llama = MinimalTokenizer();
  llama["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers",
                             {{{"type", "Split"},
                               {"pattern", {{"Regex", kLlama3Regex}}},
                               {"behavior", "Isolated"},
                               {"invert", false}},
                              ByteLevelStep(false)}}};
  t = Load(llama);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("IT'Sok"), ElementsAre('I', 'T', '\'', 'S', 'o', 'k'));
  EXPECT_THAT((*t)->Encode("a  1"), ElementsAre('a', ' ', ' ', '1'));
}

TEST_F(TokenizerJsonTest, TemplateProcessingGivesTheBos) {
  json j = MinimalTokenizer();
  j["model"]["vocab"]["<s>"] = 257;
  j["added_tokens"] =
      json::array({{{"id", 257}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {257}}, {"tokens", {"<s>"}}}}}}};
  auto t = Load(j);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_id(), 257);
  EXPECT_THAT((*t)->Encode("a"), ElementsAre(257, 'a'));
  EXPECT_THAT((*t)->Encode("a", /*add_special=*/false), ElementsAre('a'));
}

TEST_F(TokenizerJsonTest, ReadsTokenizerConfigBeside) {
  json j = MinimalTokenizer();
  j["added_tokens"] = json::array({{{"id", 257}, {"content", "<|begin|>"}, {"special", true}},
                                   {{"id", 258}, {"content", "<|end|>"}, {"special", true}}});
  Write("tokenizer_config.json", R"({"bos_token": "<|begin|>", "eos_token": {"content": "<|end|>"},
                                     "add_bos_token": true, "chat_template": "{{ messages }}"})");
  auto t = Load(j);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_id(), 257);
  EXPECT_EQ((*t)->eos_id(), 258);
  EXPECT_THAT((*t)->Encode("a"), ElementsAre(257, 'a'));
  EXPECT_EQ((*t)->chat_template(), "{{ messages }}");
}

TEST_F(TokenizerJsonTest, ReadsChatTemplateJinjaBeside) {
  Write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  auto t = Load(MinimalTokenizer());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->chat_template(), "{% for m in messages %}{{ m.content }}{% endfor %}");
}

TEST_F(TokenizerJsonTest, MissingFile) {
  auto t = Tokenizer::FromTokenizerJson((dir_ / "nope.json").string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("nope.json"));
}

TEST_F(TokenizerJsonTest, NotJsonNamesFileAndPosition) {
  const std::string path = Write("tokenizer.json", "{\n  \"model\": {\"type\": \"BPE\",,\n}");
  auto t = Tokenizer::FromTokenizerJson(path);
  ASSERT_FALSE(t.ok());
  const std::string message(t.status().message());
  EXPECT_THAT(message,
              AllOf(HasSubstr(path), HasSubstr("not valid JSON"), HasSubstr("line 2, column 27")));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST_F(TokenizerJsonTest, NumberOverflowIsAnErrorNotAnException) {
  const std::string path =
      Write("tokenizer.json", R"({"model": {"type": "BPE", "dropout": 1e999}})");
  auto t = Tokenizer::FromTokenizerJson(path);
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr(path), HasSubstr("number overflow")));
}

TEST_F(TokenizerJsonTest, TopLevelMustBeAnObject) {
  EXPECT_THAT(Error(json::array()), HasSubstr("expected an object, found array"));
}

TEST_F(TokenizerJsonTest, ModelTypeMustBeBpe) {
  json j = MinimalTokenizer();
  j["model"]["type"] = "WordPiece";
  EXPECT_THAT(Error(j), AllOf(HasSubstr("tokenizer.json: model.type"), HasSubstr("WordPiece"),
                              HasSubstr("only BPE")));
  j.erase("model");
  EXPECT_THAT(Error(j), HasSubstr("model: expected an object, found null"));
}

TEST_F(TokenizerJsonTest, BadVocab) {
  json j = MinimalTokenizer();
  j["model"]["vocab"] = json::array();
  EXPECT_THAT(Error(j), HasSubstr("model.vocab: expected an object"));
  j = MinimalTokenizer();
  j["model"]["vocab"]["xyz"] = "7";
  EXPECT_THAT(Error(j), HasSubstr("model.vocab[\"xyz\"]: expected an integer id, found string"));
  j["model"]["vocab"]["xyz"] = -3;
  EXPECT_THAT(Error(j), HasSubstr("id -3 is outside"));
  j["model"]["vocab"]["xyz"] = 4000000000LL;
  EXPECT_THAT(Error(j), HasSubstr("id 4000000000 is outside"));
  j["model"]["vocab"]["xyz"] = 300;  // 257..299 missing
  EXPECT_THAT(Error(j), HasSubstr("id 257 has no token"));
  j["model"]["vocab"]["xyz"] = 5;  // already byte 5's
  EXPECT_THAT(Error(j), HasSubstr("id 5 is given to both"));
}

// The peak resident memory of this process, in bytes.
int64_t PeakRssBytes() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return int64_t{u.ru_maxrss} * 1024;
}

// Found with tests/fuzz/tokenizer_json_fuzz: a 49-byte file whose one id is
// 2^24 - 1 sized a table of 16 million slots (770 MB, 4.7 s under ASan)
// before the density check refused it.
TEST_F(TokenizerJsonTest, ALargeIdSizesNoTable) {
  const int64_t before = PeakRssBytes();
  TokenizerJsonFiles files;
  files.path = "fuzz/tokenizer.json";
  files.tokenizer_json = R"({"model":{"type":"BPE","vocab":{"a":16777215}}})";
  auto t = Tokenizer::FromTokenizerJsonFiles(files);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "fuzz/tokenizer.json: model.vocab: id 0 has no token (ids must be dense)");
  EXPECT_LT(PeakRssBytes() - before, int64_t{64} << 20);
}

// Found with tests/fuzz/tokenizer_json_fuzz: messages quote values with dump(),
// which recursed through 200000 nested arrays and overflowed the stack.
TEST_F(TokenizerJsonTest, DeepNestingIsAnErrorNotAStackOverflow) {
  TokenizerJsonFiles files;
  files.path = "fuzz/tokenizer.json";
  files.tokenizer_json = R"({"model":{"type":"BPE","dropout":)" + std::string(200000, '[') +
                         std::string(200000, ']') + "}}";
  auto t = Tokenizer::FromTokenizerJsonFiles(files);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(),
            "fuzz/tokenizer.json: nests arrays and objects deeper than 64 levels; a tokenizer "
            "needs a few");
  // The same limit holds for tokenizer_config.json; 63 levels are fine.
  files.tokenizer_json = MinimalTokenizer().dump();
  files.tokenizer_config_json =
      R"({"x":)" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_TRUE(Tokenizer::FromTokenizerJsonFiles(files).ok());
  files.tokenizer_config_json =
      R"({"x":)" + std::string(64, '[') + std::string(64, ']') + "}";
  EXPECT_THAT(Tokenizer::FromTokenizerJsonFiles(files).status().message(),
              HasSubstr("fuzz/tokenizer_config.json: nests arrays and objects deeper than 64"));
}

TEST_F(TokenizerJsonTest, BadMerges) {
  json j = MinimalTokenizer();
  j["model"]["merges"] = json::array({42});
  EXPECT_THAT(Error(j), HasSubstr("model.merges[0]: found 42"));
  j["model"]["merges"] = json::array({"a b c"});
  EXPECT_THAT(Error(j), HasSubstr("not two tokens separated by one space"));
  j["model"]["merges"] = json::array({json::array({"a"})});
  EXPECT_THAT(Error(j), HasSubstr("model.merges[0]"));
  j["model"]["merges"] = json::array({"a b"});
  EXPECT_THAT(Error(j), AllOf(HasSubstr("tokenizer.json: merge 0"),
                              HasSubstr("\"ab\", which is not in the vocabulary")));
  j["model"]["merges"] = "a b";
  EXPECT_THAT(Error(j), HasSubstr("model.merges: expected an array, found string"));
}

TEST_F(TokenizerJsonTest, UnsupportedModelOptions) {
  json j = MinimalTokenizer();
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_THAT(Error(j), HasSubstr("model.continuing_subword_prefix"));
  j = MinimalTokenizer();
  j["model"]["byte_fallback"] = true;
  EXPECT_THAT(Error(j), HasSubstr("model.byte_fallback"));
  j = MinimalTokenizer();
  j["model"]["dropout"] = 0.1;
  EXPECT_THAT(Error(j), HasSubstr("model.dropout"));
  j = MinimalTokenizer();
  j["model"]["ignore_merges"] = "yes";
  EXPECT_THAT(Error(j), HasSubstr("model.ignore_merges: expected a boolean"));
  // An unknown token is harmless with a full byte alphabet, refused without one.
  j = MinimalTokenizer();
  j["model"]["unk_token"] = "a";
  EXPECT_TRUE(Load(j).ok());
  j["model"]["vocab"].erase("\xC4\xA0\xC4\xA0");
  j["model"]["vocab"].erase("z");
  j["model"]["vocab"]["\xC4\xA0\xC4\xA0"] = 'z';
  j["model"]["merges"] = json::array();
  EXPECT_THAT(Error(j), HasSubstr("byte 122 has no token"));
}

TEST_F(TokenizerJsonTest, BadAddedTokens) {
  json j = MinimalTokenizer();
  j["added_tokens"] =
      json::array({{{"id", 257}, {"content", "<x>"}, {"special", true}, {"lstrip", true}}});
  EXPECT_THAT(Error(j), HasSubstr("added_tokens[0].lstrip: true is not supported"));
  j["added_tokens"] = json::array({{{"id", 257}, {"content", 5}}});
  EXPECT_THAT(Error(j), HasSubstr("added_tokens[0].content: expected a string"));
  j["added_tokens"] = json::array({{{"content", "<x>"}}});
  EXPECT_THAT(Error(j), HasSubstr("added_tokens[0].id: expected an integer id"));
  j["added_tokens"] = json::array({{{"id", 256}, {"content", "<x>"}}});
  EXPECT_THAT(Error(j), HasSubstr("id 256 is given to both"));
  j["added_tokens"] = json::array({{{"id", 257}, {"content", "a"}}});
  EXPECT_THAT(Error(j), HasSubstr("appears twice"));
}

TEST_F(TokenizerJsonTest, UnsupportedNormalizerAndDecoder) {
  json j = MinimalTokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_THAT(Error(j), HasSubstr("normalizer: found NFC; only null is supported"));
  j = MinimalTokenizer();
  j.erase("decoder");
  EXPECT_THAT(Error(j), HasSubstr("decoder: found null; only ByteLevel is supported"));
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_THAT(Error(j), HasSubstr("decoder: found WordPiece"));
}

TEST_F(TokenizerJsonTest, UnsupportedPreTokenizers) {
  json j = MinimalTokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_THAT(Error(j), AllOf(HasSubstr("pre_tokenizer: found Whitespace; supported: ByteLevel"),
                              HasSubstr("Sequence[Digits(individual_digits=true)")));
  j["pre_tokenizer"] = nullptr;
  EXPECT_THAT(Error(j), HasSubstr("pre_tokenizer: found null"));
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Whitespace"}}, {{"type", "Punctuation"}}}}};
  EXPECT_THAT(Error(j), HasSubstr("found Sequence[Whitespace, Punctuation]"));
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}}}};
  EXPECT_THAT(Error(j), HasSubstr("found Sequence[Digits]"));
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}};
  EXPECT_THAT(Error(j), HasSubstr("pre_tokenizer.add_prefix_space: true is not supported"));
  j["pre_tokenizer"] = ByteLevelStep(false);
  EXPECT_THAT(Error(j), HasSubstr("pre_tokenizer.use_regex: found false"));
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", false}}, ByteLevelStep(true)}}};
  EXPECT_THAT(Error(j), HasSubstr("individual_digits: false is not supported"));
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"Regex", "\\s+"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                          ByteLevelStep(false)}}};
  EXPECT_THAT(Error(j), AllOf(HasSubstr("pre_tokenizer.pretokenizers[0].pattern"),
                              HasSubstr("\\\\s+"), HasSubstr("only the Llama-3 regex")));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = kLlama3Regex;
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_THAT(Error(j), HasSubstr("behavior: found \"Removed\""));
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Isolated";
  j["pre_tokenizer"]["pretokenizers"][1] = ByteLevelStep(true);
  EXPECT_THAT(Error(j), HasSubstr("pre_tokenizer.pretokenizers[1].use_regex: found true"));
}

TEST_F(TokenizerJsonTest, UnsupportedPostProcessors) {
  json j = MinimalTokenizer();
  j["post_processor"] = {{"type", "BertProcessing"}};
  EXPECT_THAT(Error(j), HasSubstr("post_processor: found BertProcessing"));
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"Sequence", {{"id", "A"}}}}, {{"SpecialToken", {{"id", "</s>"}}}}}},
      {"special_tokens", json::object()}};
  EXPECT_THAT(Error(j), HasSubstr("adds \"</s>\" after the text"));
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
      {"special_tokens", json::object()}};
  EXPECT_THAT(Error(j),
              HasSubstr("special_tokens[\"<s>\"].ids: expected a list of exactly one id"));
}

TEST_F(TokenizerJsonTest, BadTokenizerConfig) {
  const json j = MinimalTokenizer();
  const std::string config = Write("tokenizer_config.json", "{\"bos_token\": ");
  EXPECT_THAT(Error(j), AllOf(HasSubstr(config), HasSubstr("not valid JSON")));
  Write("tokenizer_config.json", R"({"bos_token": "<nope>"})");
  EXPECT_THAT(Error(j), AllOf(HasSubstr("tokenizer_config.json: bos_token"),
                              HasSubstr("\"<nope>\" is not in the vocabulary")));
  Write("tokenizer_config.json", R"({"eos_token": 5})");
  EXPECT_THAT(Error(j), HasSubstr("eos_token: expected a string"));
  Write("tokenizer_config.json", R"({"add_bos_token": true})");
  EXPECT_THAT(Error(j), HasSubstr("add_bos is set but there is no bos token"));
  Write("tokenizer_config.json", R"({"chat_template": 3})");
  EXPECT_THAT(Error(j), HasSubstr("chat_template: expected a string or a list"));
}

}  // namespace
}  // namespace tierserve
