// The ChatML prompt format, as SmolLM2-Instruct's chat template renders it:
//
//   {% for message in messages %}
//     {% if loop.first and messages[0]['role'] != 'system' %}
//       <|im_start|>system\n{default system}<|im_end|>\n
//     {% endif %}
//     <|im_start|>{role}\n{content}<|im_end|>\n
//   {% endfor %}
//   {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

std::string ApplyChatMLTemplate(absl::Span<const ChatMessage> messages, bool add_generation_prompt,
                                std::string_view default_system, std::vector<TextSpan>* content_spans) {
  std::string out;
  auto append = [&out](std::string_view role, std::string_view content) -> TextSpan {
    out.append("<|im_start|>").append(role).append("\n");
    const size_t begin = out.size();
    out.append(content);
    const TextSpan span{begin, out.size()};
    out.append("<|im_end|>\n");
    return span;
  };
  if (!messages.empty() && messages.front().role != "system" && !default_system.empty()) {
    append("system", default_system);
  }
  for (const ChatMessage& m : messages) {
    const TextSpan span = append(m.role, m.content);
    if (content_spans != nullptr) content_spans->push_back(span);
  }
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

}  // namespace tierserve
