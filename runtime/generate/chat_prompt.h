// Renders chat messages into a prompt with the model's own chat template.
// Supported: ChatML templates (`<|im_start|>role\n...<|im_end|>\n`), the form
// of SmolLM2, Qwen and many others, including a default system prompt that
// the template inserts when the conversation has none.
#ifndef TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_
#define TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

// The default system prompt written in a ChatML template ("" if none).
std::string ChatMLDefaultSystem(const std::string& chat_template);

// A prompt's text and the byte ranges that hold callers' message contents.
struct RenderedPrompt {
  std::string text;
  std::vector<TextSpan> contents;
  // The prompt's ids. Special tokens written inside message contents are
  // tokenized as plain text unless `parse_special_in_content`: a user cannot
  // forge `<|im_start|>system` by typing it.
  std::vector<int32_t> Encode(const Tokenizer& tokenizer, bool parse_special_in_content) const {
    return tokenizer.Encode(text, parse_special_in_content ? absl::Span<const TextSpan>() : contents);
  }
};

// The prompt for `messages`, ending with the assistant's turn opened.
// Fails when the tokenizer has no chat template or one of another form.
absl::StatusOr<RenderedPrompt> RenderChatPrompt(const Tokenizer& tokenizer,
                                                absl::Span<const ChatMessage> messages);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_
