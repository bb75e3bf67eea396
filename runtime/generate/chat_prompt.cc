#include "runtime/generate/chat_prompt.h"

#include <string_view>

#include "absl/strings/match.h"
#include "runtime/base/config_error.h"

namespace tierserve {

std::string ChatMLDefaultSystem(const std::string& tmpl) {
  // The template writes the default as a literal: '<|im_start|>system\n...<|im_end|>'.
  constexpr std::string_view kOpen = "<|im_start|>system\n";
  const size_t a = tmpl.find(kOpen);
  if (a == std::string::npos) return "";
  const size_t b = tmpl.find("<|im_end|>", a + kOpen.size());
  if (b == std::string::npos) return "";
  const std::string body = tmpl.substr(a + kOpen.size(), b - a - kOpen.size());
  // A template that writes the caller's system message here has no default.
  if (absl::StrContains(body, "{{") || absl::StrContains(body, "{%")) return "";
  return body;
}

absl::StatusOr<RenderedPrompt> RenderChatPrompt(const Tokenizer& tokenizer,
                                                absl::Span<const ChatMessage> messages) {
  const std::string& tmpl = tokenizer.chat_template();
  if (tmpl.empty()) {
    return absl::FailedPreconditionError(
        "the model ships no chat template; send a plain prompt instead of chat messages");
  }
  if (!absl::StrContains(tmpl, "<|im_start|>")) {
    return absl::UnimplementedError(
        "the model's chat template is not of the ChatML form (<|im_start|>role ... <|im_end|>), "
        "the only form supported; send a plain prompt instead");
  }
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return absl::InvalidArgumentError("chat message role " + QuoteForMessage(m.role) +
                                        " is not one of system, user, assistant");
    }
  }
  RenderedPrompt out;
  out.text = ApplyChatMLTemplate(messages, /*add_generation_prompt=*/true, ChatMLDefaultSystem(tmpl), &out.contents);
  return out;
}

}  // namespace tierserve
