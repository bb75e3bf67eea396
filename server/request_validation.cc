#include "server/request_validation.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/generate/stop_matcher.h"

namespace tierserve {
namespace {

constexpr int32_t kDefaultMaxNewTokens = 128;

}  // namespace

absl::StatusOr<RenderedPrompt> PromptText(const Tokenizer& tok, const v1::Prompt& prompt) {
  switch (prompt.kind_case()) {
    case v1::Prompt::kText:
      if (prompt.text().empty()) {
        return absl::InvalidArgumentError("the prompt is empty; send non-empty text or chat messages");
      }
      return RenderedPrompt{prompt.text(), {}};
    case v1::Prompt::kChat: {
      if (prompt.chat().messages().empty()) {
        return absl::InvalidArgumentError("the chat has no messages; send at least one");
      }
      std::vector<ChatMessage> messages;
      for (const v1::ChatMessage& m : prompt.chat().messages()) messages.push_back({m.role(), m.content()});
      return RenderChatPrompt(tok, messages);
    }
    default:
      return absl::InvalidArgumentError("the prompt is missing; set prompt.text or prompt.chat");
  }
}

absl::StatusOr<GenerationRequest> BuildGenerationRequest(const Tokenizer& tok,
                                                         const PromptLimits& limits,
                                                         const v1::Prompt& prompt,
                                                         const v1::GenerationParameters& p,
                                                         absl::string_view max_new_tokens_name) {
  const int64_t max_seq = limits.max_sequence_length;
  GenerationRequest req;
  req.max_new_tokens = p.has_max_new_tokens() ? p.max_new_tokens() : kDefaultMaxNewTokens;
  if (req.max_new_tokens < 1 || req.max_new_tokens > max_seq) {
    return absl::InvalidArgumentError(absl::StrCat(max_new_tokens_name, " is ", req.max_new_tokens,
                                                   "; it must be between 1 and ", max_seq,
                                                   " (the model's max_sequence_length)"));
  }
  SamplingParams& s = req.sampling;
  s.temperature = p.has_temperature() ? p.temperature() : 1.0f;
  s.top_k = p.top_k();
  s.top_p = p.has_top_p() ? p.top_p() : 1.0f;
  s.min_p = p.min_p();
  s.repetition_penalty = p.has_repetition_penalty() ? p.repetition_penalty() : 1.0f;
  s.seed = p.has_seed() ? p.seed() : std::random_device{}();
  s.logprobs = p.top_logprobs();
  if (p.top_logprobs() > 0 && !p.logprobs()) {
    return absl::InvalidArgumentError(absl::StrCat("top_logprobs is ", p.top_logprobs(),
                                                   " but logprobs is false; set logprobs to true, "
                                                   "or top_logprobs to 0"));
  }
  TS_RETURN_IF_ERROR(ValidateSamplingParams(s));
  req.ignore_eos = p.ignore_eos();
  req.stop.assign(p.stop().begin(), p.stop().end());
  TS_RETURN_IF_ERROR(StopMatcher::Create(req.stop).status());

  TS_ASSIGN_OR_RETURN(RenderedPrompt rendered, PromptText(tok, prompt));
  const std::string& text = rendered.text;
  // Refused before tokenizing when even the longest tokens could not fit it.
  if (static_cast<uint64_t>(text.size()) >
      static_cast<uint64_t>(max_seq) * static_cast<uint64_t>(tok.max_token_bytes())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt has ", text.size(), " bytes, more than ", max_seq, " tokens (the model's "
        "max_sequence_length) of at most ", tok.max_token_bytes(), " bytes each can hold"));
  }
  req.prompt = rendered.Encode(tok, limits.parse_special_tokens_in_chat);
  const int64_t n = static_cast<int64_t>(req.prompt.size());
  if (n == 0) return absl::InvalidArgumentError("the prompt encodes to no tokens");
  if (n + req.max_new_tokens > max_seq) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt has ", n, " tokens and ", max_new_tokens_name, " is ", req.max_new_tokens, "; together at most ",
        max_seq, " (the model's max_sequence_length) are allowed"));
  }
  return req;
}

absl::StatusOr<GenerationRequest> BuildEngineRequest(const Engine& engine, const PromptLimits& limits,
                                                     const v1::Prompt& prompt,
                                                     const v1::GenerationParameters& params,
                                                     absl::string_view max_new_tokens_name) {
  const Tokenizer* tok = engine.model().tokenizer.get();
  if (tok == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("model ", engine.name(), " has no tokenizer"));
  }
  return BuildGenerationRequest(*tok, limits, prompt, params, max_new_tokens_name);
}

}  // namespace tierserve
