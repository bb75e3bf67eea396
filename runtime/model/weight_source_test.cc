// The HF names a WeightSource reports for its tensors: what a device map is
// checked against, whatever the file format.
#include "runtime/model/weight_source.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/format/testing/safetensors_writer.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

TEST(HfLlamaNameTest, InvertsGgufLlamaName) {
  for (const char* hf :
       {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        "model.layers.0.self_attn.q_proj.weight", "model.layers.17.self_attn.o_proj.bias",
        "model.layers.3.mlp.down_proj.weight", "model.layers.29.post_attention_layernorm.weight"}) {
    const std::string gguf = GgufLlamaName(hf);
    ASSERT_FALSE(gguf.empty()) << hf;
    EXPECT_EQ(HfLlamaName(gguf), hf) << gguf;
  }
  EXPECT_EQ(HfLlamaName("blk.12.ffn_up.weight"), "model.layers.12.mlp.up_proj.weight");
  EXPECT_EQ(HfLlamaName("token_embd.weight"), "model.embed_tokens.weight");
}

TEST(HfLlamaNameTest, UnknownNamesHaveNoHfName) {
  EXPECT_EQ(HfLlamaName("rope_freqs.weight"), "");
  EXPECT_EQ(HfLlamaName("blk.3.attn_q.scale"), "");
  EXPECT_EQ(HfLlamaName("blk.3"), "");
  EXPECT_EQ(HfLlamaName("model.layers.3.self_attn.q_proj.weight"), "");
}

std::vector<std::string> NamesOf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<WeightSource>> src = WeightSource::Open(path);
  EXPECT_TRUE(src.ok()) << src.status();
  return src.ok() ? (*src)->HfTensorNames() : std::vector<std::string>{};
}

// The GGUF conversion of tiny_llama holds the same tensors under GGUF names;
// translated back they are the safetensors names (both untied: lm_head present).
TEST(HfTensorNamesTest, GgufNamesMatchTheHfCheckpoint) {
  const std::vector<std::string> hf = NamesOf("tests/data/tiny_llama");
  ASSERT_EQ(hf.size(), 2u * 9 + 3);
  EXPECT_EQ(NamesOf("tests/data/tiny_llama_gguf/tiny_llama_f32.gguf"), hf);
  EXPECT_EQ(NamesOf("tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf"), hf);
}

TEST(HfTensorNamesTest, Gpt2NamesCarryTheTransformerPrefix) {
  const std::vector<std::string> names = NamesOf("tests/data/tiny_gpt2");
  ASSERT_EQ(names.size(), 2u * 12 + 4);
  for (const std::string& n : names) EXPECT_EQ(n.rfind("transformer.", 0), 0u) << n;
}

// The original GPT-2 checkpoint layout (no "transformer." on the keys, as
// openai-community/gpt2 ships it) is reported under the model's module paths.
TEST(HfTensorNamesTest, PrefixlessGpt2CheckpointGetsTheTransformerPrefix) {
  ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::filesystem::copy_file("tests/data/tiny_gpt2/config.json", dir.File("config.json"));
  SafetensorsWriter w;
  const std::string four_floats(16, '\0');
  w.AddTensor("h.0.ln_1.weight", DType::kF32, {4}, four_floats);
  w.AddTensor("wte.weight", DType::kF32, {2, 2}, four_floats);
  w.AddTensor("lm_head.weight", DType::kF32, {2, 2}, four_floats);
  ASSERT_TRUE(w.WriteTo(dir.File("model.safetensors")).ok());
  EXPECT_EQ(NamesOf(dir.path()),
            (std::vector<std::string>{"lm_head.weight", "transformer.h.0.ln_1.weight",
                                      "transformer.wte.weight"}));
}

TEST(HfTensorNamesTest, SmolLM2) {
  const std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << path << " is absent; run scripts/fetch_model.sh";
  const std::vector<std::string> names = NamesOf(path);
  // 30 blocks x 9 + embeddings + final norm; tied embeddings: no lm_head.
  ASSERT_EQ(names.size(), 272u);
  for (const std::string& n : names) {
    EXPECT_TRUE(n.rfind("model.layers.", 0) == 0 || n == "model.embed_tokens.weight" ||
                n == "model.norm.weight")
        << n;
  }
}

}  // namespace
}  // namespace tierserve
