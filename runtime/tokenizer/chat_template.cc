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
                                std::string_view default_system) {
  std::string out;
  auto append = [&out](std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  if (!messages.empty() && messages.front().role != "system" && !default_system.empty()) {
    append("system", default_system);
  }
  for (const ChatMessage& m : messages) append(m.role, m.content);
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

}  // namespace tierserve
