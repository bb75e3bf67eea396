#include "runtime/model/model_config.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

class ModelConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    dir_ = std::filesystem::temp_directory_path() /
           ("tierserve_cfg_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    const std::string path = (dir_ / "config.json").string();
    std::ofstream(path) << text;
    return path;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

constexpr char kLlama[] = R"({
  "architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
  "rope_theta": 10000.0, "tie_word_embeddings": false, "eos_token_id": [2, 3]})";

TEST_F(ModelConfigTest, ReadsLlama) {
  absl::StatusOr<ModelConfig> c = ReadHfConfig(Write(kLlama));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Architecture::kLlama);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{2, 3}));
}

TEST_F(ModelConfigTest, RopeThetaFromRopeParameters) {
  std::string text = kLlama;
  text.replace(text.find(R"("rope_theta": 10000.0)"), 21,
               R"("rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"})");
  absl::StatusOr<ModelConfig> c = ReadHfConfig(Write(text));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_theta, 100000.0f);
}

TEST_F(ModelConfigTest, MissingFieldNamesFileAndField) {
  std::string text = kLlama;
  text.replace(text.find(R"("hidden_size": 64,)"), 18, "");
  const std::string path = Write(text);
  absl::StatusOr<ModelConfig> c = ReadHfConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(path));
  EXPECT_THAT(c.status().message(), HasSubstr("missing required field \"hidden_size\""));
  EXPECT_EQ(std::string(c.status().message()).find('\n'), std::string::npos);
}

TEST_F(ModelConfigTest, UnknownArchitectureIsNamed) {
  const std::string path = Write(R"({"architectures": ["FalconForCausalLM"], "vocab_size": 8})");
  absl::StatusOr<ModelConfig> c = ReadHfConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(path));
  EXPECT_THAT(c.status().message(), HasSubstr("unknown architecture \"FalconForCausalLM\""));
  EXPECT_THAT(c.status().message(), HasSubstr("LlamaForCausalLM"));
}

TEST_F(ModelConfigTest, NotJson) {
  const std::string path = Write("{not json");
  absl::StatusOr<ModelConfig> c = ReadHfConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(path));
  EXPECT_THAT(c.status().message(), HasSubstr("not valid JSON"));
}

TEST_F(ModelConfigTest, WrongTypeAndInconsistentHeads) {
  std::string text = kLlama;
  text.replace(text.find(R"("num_key_value_heads": 2)"), 24, R"("num_key_value_heads": 3)");
  absl::StatusOr<ModelConfig> c = ReadHfConfig(Write(text));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("must be > 0 and divide the attention heads"));

  text = kLlama;
  text.replace(text.find(R"("vocab_size": 512)"), 17, R"("vocab_size": "512")");
  c = ReadHfConfig(Write(text));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("field \"vocab_size\" must be an integer"));
}

// Found with tests/fuzz/model_config_json_fuzz: the message for an unsupported
// hidden_act quoted it with dump(), which recursed through 200000 nested
// arrays and overflowed the stack. Nesting is refused while parsing.
TEST_F(ModelConfigTest, DeepNestingIsAnErrorNotAStackOverflow) {
  std::string text = kLlama;
  text.insert(text.find('{') + 1,
              R"("hidden_act": )" + std::string(200000, '[') + std::string(200000, ']') + ", ");
  absl::StatusOr<ModelConfig> c = ParseHfConfig(text, "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "config.json: nests arrays and objects deeper than 64 levels");
  text = kLlama;
  text.insert(text.find('{') + 1,
              R"("hidden_act": )" + std::string(63, '[') + std::string(63, ']') + ", ");
  c = ParseHfConfig(text, "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("field \"hidden_act\" is [[[["));
}

TEST_F(ModelConfigTest, ParsesTextAsReadHfConfigReadsTheFile) {
  absl::StatusOr<ModelConfig> from_text = ParseHfConfig(kLlama, "mem");
  absl::StatusOr<ModelConfig> from_file = ReadHfConfig(Write(kLlama));
  ASSERT_TRUE(from_text.ok()) << from_text.status();
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_text->hidden_size, from_file->hidden_size);
  EXPECT_EQ(from_text->eos_token_ids, from_file->eos_token_ids);
  EXPECT_THAT(ParseHfConfig("[1]", "mem").status().message(), HasSubstr("mem: expected a JSON object"));
}

TEST_F(ModelConfigTest, MissingFileIsNotFound) {
  absl::StatusOr<ModelConfig> c = ReadHfConfig("/nonexistent/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/config.json"));
}

}  // namespace
}  // namespace tierserve
