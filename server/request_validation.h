// Validation of a generation request at the edge: the prompt (text, or chat
// messages through the model's template) and the parameters of a
// tierserve.v1 request become a GenerationRequest the engine takes as given.
// Every error is INVALID_ARGUMENT (or what the chat template allows) with a
// message naming the field and what is allowed.
//
// Thread-safety: free functions over their arguments; safe to call concurrently.
#ifndef TIERSERVE_SERVER_REQUEST_VALIDATION_H_
#define TIERSERVE_SERVER_REQUEST_VALIDATION_H_

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "runtime/engine/engine.h"
#include "runtime/generate/chat_prompt.h"
#include "runtime/generate/generator.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tierserve/v1/generation.pb.h"

namespace tierserve {

// What a model allows of one prompt.
struct PromptLimits {
  int64_t max_sequence_length = 0;  // prompt + new tokens
  // Special tokens written in chat message contents are matched as special
  // tokens (true) or tokenized as plain text (false, the default).
  bool parse_special_tokens_in_chat = false;
};

// The prompt's text: plain text, or chat messages rendered through the
// tokenizer's chat template.
absl::StatusOr<RenderedPrompt> PromptText(const Tokenizer& tokenizer, const v1::Prompt& prompt);

// Validates one prompt and the call's parameters into what the engine runs:
// sampling parameters in range, stop strings, and a prompt that encodes to
// at least one token and leaves room for max_new_tokens within `limits`.
// `max_new_tokens_name` is what the messages call max_new_tokens (the
// KServe front end's parameter is max_tokens).
absl::StatusOr<GenerationRequest> BuildGenerationRequest(const Tokenizer& tokenizer,
                                                         const PromptLimits& limits,
                                                         const v1::Prompt& prompt,
                                                         const v1::GenerationParameters& params,
                                                         absl::string_view max_new_tokens_name = "max_new_tokens");

// BuildGenerationRequest with `engine`'s tokenizer (FAILED_PRECONDITION if
// its model has none).
absl::StatusOr<GenerationRequest> BuildEngineRequest(const Engine& engine, const PromptLimits& limits,
                                                     const v1::Prompt& prompt,
                                                     const v1::GenerationParameters& params,
                                                     absl::string_view max_new_tokens_name = "max_new_tokens");

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_REQUEST_VALIDATION_H_
