// A sequence's logits do not depend on what else is in the forward pass: the
// same bits alone, batched with other sequences of other lengths, or fed in
// chunks (chunked prefill, recompute after preemption). Every kernel keeps
// one reduction order per row whatever the number of rows, in every
// precision the project serves.
#include <cstring>
#include <filesystem>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {
namespace {

struct Case {
  std::string name;
  std::string path;
  // "" (as stored), "int8", "nf4", "fp4"
  std::string quantization;
  // Block weights multiply int8 activations (activation_precision: int8).
  bool int8_activations = false;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

ModelLoadOptions OptionsFor(const Case& c, ThreadPool* pool) {
  ModelLoadOptions o;
  o.pool = pool;
  if (c.quantization == "int8") {
    o.quantization.load_in_8bit = true;
  } else if (c.quantization == "nf4" || c.quantization == "fp4") {
    o.quantization.load_in_4bit = true;
    o.quantization.bnb_4bit_quant_type = c.quantization == "nf4" ? QuantizationConfig::QuantType::kNf4
                                                                 : QuantizationConfig::QuantType::kFp4;
    o.quantization.bnb_4bit_use_double_quant = true;
  }
  if (c.int8_activations) o.activations = ActivationPrecision::kInt8;
  return o;
}

// Prompts of different lengths, token ids spread over the vocabulary.
std::vector<std::vector<int32_t>> Prompts(int64_t vocab) {
  std::vector<std::vector<int32_t>> prompts;
  for (int len : {1, 5, 16, 17, 40}) {
    std::vector<int32_t> p;
    for (int i = 0; i < len; ++i) p.push_back(static_cast<int32_t>((7919 * (i + 3 * len) + 11) % vocab));
    prompts.push_back(p);
  }
  return prompts;
}

class BatchInvarianceTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(GetParam().path)) {
      GTEST_FAIL() << GetParam().path << " is missing: run scripts/fetch_model.sh";
    }
    pool_ = std::make_unique<ThreadPool>(2);
    absl::StatusOr<LoadedModel> m = LoadModel(GetParam().path, OptionsFor(GetParam(), pool_.get()));
    ASSERT_TRUE(m.ok()) << m.status();
    loaded_ = std::move(*m);
  }

  // Logits of every position of `prompt`, fed alone in one forward.
  std::vector<float> Alone(const std::vector<int32_t>& prompt) {
    CausalLM& model = *loaded_.model;
    auto cache = model.NewCache(static_cast<int64_t>(prompt.size()));
    SequenceInput in{prompt, 0, cache.get(), /*all_logits=*/true};
    std::vector<float> logits;
    EXPECT_TRUE(model.Forward({&in, 1}, &logits).ok());
    return logits;
  }

  std::unique_ptr<ThreadPool> pool_;
  LoadedModel loaded_;
};

bool SameBits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

TEST_P(BatchInvarianceTest, BatchedLogitsAreTheBitsOfEachSequenceAlone) {
  CausalLM& model = *loaded_.model;
  const int64_t V = model.config().vocab_size;
  const std::vector<std::vector<int32_t>> prompts = Prompts(V);
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) alone.push_back(Alone(p));

  // All prompts in one forward, every position's logits.
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<SequenceInput> batch;
  for (const auto& p : prompts) {
    caches.push_back(model.NewCache(static_cast<int64_t>(p.size()) + 1));
    batch.push_back({p, 0, caches.back().get(), true});
  }
  std::vector<float> logits;
  ASSERT_TRUE(model.Forward(batch, &logits).ok());
  int64_t row = 0;
  for (size_t s = 0; s < prompts.size(); ++s) {
    for (size_t i = 0; i < prompts[s].size(); ++i, ++row) {
      ASSERT_TRUE(SameBits(&logits[row * V], &alone[s][i * V], V)) << "prompt " << s << " position " << i;
    }
  }

  // Then one decode step for all of them together: a token each, against
  // the same token appended alone.
  std::vector<int32_t> next(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    next[s] = static_cast<int32_t>((s * 131 + 7) % V);
    batch[s] = {{&next[s], 1}, static_cast<int64_t>(prompts[s].size()), caches[s].get(), false};
  }
  ASSERT_TRUE(model.Forward(batch, &logits).ok());
  for (size_t s = 0; s < prompts.size(); ++s) {
    std::vector<int32_t> longer = prompts[s];
    longer.push_back(next[s]);
    const std::vector<float> want = Alone(longer);
    ASSERT_TRUE(SameBits(&logits[s * V], &want[prompts[s].size() * V], V)) << "decode of prompt " << s;
  }
}

TEST_P(BatchInvarianceTest, ChunkedPrefillGivesTheBitsOfOneForward) {
  CausalLM& model = *loaded_.model;
  const int64_t V = model.config().vocab_size;
  const std::vector<int32_t> prompt = Prompts(V).back();
  const std::vector<float> whole = Alone(prompt);
  for (int64_t chunk : {1, 3, 16}) {
    auto cache = model.NewCache(static_cast<int64_t>(prompt.size()));
    std::vector<float> logits;
    for (int64_t start = 0; start < static_cast<int64_t>(prompt.size()); start += chunk) {
      const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(prompt.size()) - start);
      SequenceInput in{absl::Span<const int32_t>(prompt).subspan(start, n), start, cache.get(), true};
      ASSERT_TRUE(model.Forward({&in, 1}, &logits).ok());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(SameBits(&logits[i * V], &whole[(start + i) * V], V))
            << "chunk " << chunk << " position " << start + i;
      }
    }
  }
}

constexpr char kSmolLM2[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

INSTANTIATE_TEST_SUITE_P(
    Models, BatchInvarianceTest,
    ::testing::Values(Case{"tiny_llama", "tests/data/tiny_llama", ""},
                      Case{"tiny_gpt2", "tests/data/tiny_gpt2", ""},
                      Case{"tiny_llama_q8_0", "tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf", ""},
                      Case{"tiny_llama_q8_0_int8_activations",
                           "tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf", "", true},
                      Case{"tiny_llama_int8", "tests/data/tiny_llama", "int8"},
                      Case{"tiny_llama_nf4", "tests/data/tiny_llama", "nf4"},
                      Case{"tiny_llama_fp4", "tests/data/tiny_llama", "fp4"},
                      Case{"smollm2_q4_1", kSmolLM2, ""},
                      Case{"smollm2_q4_1_int8_activations", kSmolLM2, "", true},
                      Case{"smollm2_int8", kSmolLM2, "int8"},
                      Case{"smollm2_nf4", kSmolLM2, "nf4"}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace tierserve
