#include "runtime/generate/generator.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", &pool_);
    ASSERT_TRUE(m.ok()) << m.status();
    loaded_ = std::move(*m);
    ASSERT_NE(loaded_.tokenizer, nullptr);
  }
  GenerationRequest Greedy(int n) {
    GenerationRequest req;
    req.prompt = loaded_.tokenizer->Encode("the quick brown fox", /*add_special=*/false);
    req.max_new_tokens = n;
    req.sampling.temperature = 0;
    req.ignore_eos = true;
    return req;
  }
  ThreadPool pool_{2};
  LoadedModel loaded_;
};

TEST_F(GeneratorTest, LengthLimitAndStreamedTextAddUp) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  std::string streamed;
  int deltas = 0;
  absl::StatusOr<GenerationResult> r = gen.Generate(Greedy(12), [&](const GenerationDelta& d) {
    streamed += d.text;
    ++deltas;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kLength);
  EXPECT_EQ(r->tokens.size(), 12u);
  EXPECT_EQ(deltas, 12);
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text, loaded_.tokenizer->Decode(r->TokenIds(), /*skip_special=*/true));
}

TEST_F(GeneratorTest, StopStringEndsTheTextBeforeIt) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  absl::StatusOr<GenerationResult> full = gen.Generate(Greedy(24));
  ASSERT_TRUE(full.ok());
  ASSERT_GE(full->text.size(), 6u);
  // A stop string taken from the middle of the greedy text.
  const std::string stop = full->text.substr(full->text.size() / 2, 3);
  GenerationRequest req = Greedy(24);
  req.stop = {stop};
  absl::StatusOr<GenerationResult> r = gen.Generate(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_EQ(r->text, full->text.substr(0, full->text.find(stop)));
}

TEST_F(GeneratorTest, CallbackCancels) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  int calls = 0;
  absl::StatusOr<GenerationResult> r = gen.Generate(Greedy(20), [&](const GenerationDelta&) {
    return ++calls < 3;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r->tokens.size(), 3u);
}

TEST_F(GeneratorTest, EosEndsGeneration) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  const std::vector<int32_t>& eos = loaded_.model->config().eos_token_ids;
  ASSERT_EQ(eos, std::vector<int32_t>{0});
  // Sampling at a high temperature visits most of the 512 tokens; with
  // ignore_eos the stream runs through EOS, without it it ends there.
  GenerationRequest req = Greedy(200);
  req.sampling.temperature = 5.0f;
  req.sampling.seed = 7;
  absl::StatusOr<GenerationResult> through = gen.Generate(req);
  ASSERT_TRUE(through.ok());
  size_t first_eos = through->tokens.size();
  for (size_t i = 0; i < through->tokens.size(); ++i) {
    if (through->tokens[i].id == eos[0]) {
      first_eos = i;
      break;
    }
  }
  ASSERT_LT(first_eos, through->tokens.size()) << "seed 7 draws no EOS in 200 tokens";
  req.ignore_eos = false;
  absl::StatusOr<GenerationResult> r = gen.Generate(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kEos);
  EXPECT_EQ(r->tokens.size(), first_eos + 1);
}

TEST_F(GeneratorTest, SameSeedSameTokens) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  GenerationRequest req = Greedy(16);
  req.sampling.temperature = 1.0f;
  req.sampling.top_p = 0.9f;
  req.sampling.seed = 1234;
  absl::StatusOr<GenerationResult> a = gen.Generate(req);
  absl::StatusOr<GenerationResult> b = gen.Generate(req);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->text, b->text);
}

TEST_F(GeneratorTest, RejectsBadRequestsWithWhatIsAllowed) {
  Generator gen(loaded_.model.get(), loaded_.tokenizer.get());
  GenerationRequest req = Greedy(4);
  req.prompt.clear();
  absl::Status s = gen.Generate(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("at least one"));

  req = Greedy(0);
  s = gen.Generate(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("at least 1"));

  req = Greedy(1000);  // the tiny model's context is 256
  s = gen.Generate(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("exceeds the model's context of 256"));

  req = Greedy(4);
  req.sampling.top_p = 0.0f;
  s = gen.Generate(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("top_p"));
}

}  // namespace
}  // namespace tierserve
