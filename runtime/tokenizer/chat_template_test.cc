// Expected strings are written by hand from SmolLM2-Instruct's chat template
// (tests/data/tokenizers/smollm2/chat_template.jinja).
#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {
namespace {

TEST(ChatMLTemplateTest, InsertsTheDefaultSystemPrompt) {
  const std::vector<ChatMessage> messages = {{"user", "What is the capital of France?"}};
  EXPECT_EQ(ApplyChatMLTemplate(messages, /*add_generation_prompt=*/true, kSmolLm2DefaultSystem),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n"
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatMLTemplateTest, KeepsAGivenSystemMessage) {
  const std::vector<ChatMessage> messages = {{"system", "Answer in one word."},
                                             {"user", "What is the capital of France?"},
                                             {"assistant", "Paris."},
                                             {"user", "And of Italy?"}};
  EXPECT_EQ(ApplyChatMLTemplate(messages, /*add_generation_prompt=*/true, kSmolLm2DefaultSystem),
            "<|im_start|>system\nAnswer in one word.<|im_end|>\n"
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
            "<|im_start|>assistant\nParis.<|im_end|>\n"
            "<|im_start|>user\nAnd of Italy?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatMLTemplateTest, WithoutGenerationPromptOrDefaultSystem) {
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  EXPECT_EQ(ApplyChatMLTemplate(messages, /*add_generation_prompt=*/false, kSmolLm2DefaultSystem),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(ApplyChatMLTemplate(messages, /*add_generation_prompt=*/false, ""),
            "<|im_start|>user\nHi<|im_end|>\n");
  // The template's loop never runs for no messages, so no system prompt either.
  EXPECT_EQ(ApplyChatMLTemplate({}, /*add_generation_prompt=*/true, kSmolLm2DefaultSystem),
            "<|im_start|>assistant\n");
}

TEST(ChatMLTemplateTest, EncodesWithSpecialTokensForSmolLm2) {
  auto t = Tokenizer::FromTokenizerJson("tests/data/tokenizers/smollm2/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  const std::vector<int32_t> ids = (*t)->Encode(ApplyChatMLTemplate(messages, true, ""));
  // The markers are single special tokens: <|im_start|> = 1, <|im_end|> = 2.
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);
  EXPECT_EQ((*t)->Decode(ids), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ((*t)->Decode(ids, /*skip_special=*/true), "user\nHi\nassistant\n");
}

}  // namespace
}  // namespace tierserve
