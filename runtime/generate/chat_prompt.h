// Renders chat messages into a prompt with the model's own chat template.
// Supported: ChatML templates (`<|im_start|>role\n...<|im_end|>\n`), the form
// of SmolLM2, Qwen and many others, including a default system prompt that
// the template inserts when the conversation has none.
#ifndef TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_
#define TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

// The default system prompt written in a ChatML template ("" if none).
std::string ChatMLDefaultSystem(const std::string& chat_template);

// The prompt text for `messages`, ending with the assistant's turn opened.
// Fails when the tokenizer has no chat template or one of another form.
absl::StatusOr<std::string> RenderChatPrompt(const Tokenizer& tokenizer,
                                             absl::Span<const ChatMessage> messages);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_CHAT_PROMPT_H_
