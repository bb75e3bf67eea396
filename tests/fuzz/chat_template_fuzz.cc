// Fuzzes chat rendering: the model's chat template as the tokenizer ships it
// (ChatMLDefaultSystem reads its default system prompt), RenderChatPrompt
// (roles checked, ChatML applied) and the encoding of the rendered prompt.
//
// Input: chat template NUL role NUL content [NUL role NUL content ...].
// Checked: each message's content lies in the text where its span says, and
// with contents tokenized as plain text no special token comes from a
// content: the prompt holds exactly the special tokens it holds with every
// content emptied (a user cannot forge `<|im_start|>system`).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/generate/chat_prompt.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace tierserve {
namespace {

constexpr size_t kMaxMessages = 16;

int CountSpecial(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  int n = 0;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) {
      fuzz::InvariantFailed("Encode gave an id outside the vocabulary");
    }
    n += tok.IsSpecial(id) ? 1 : 0;
  }
  return n;
}

}  // namespace
}  // namespace tierserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  const std::vector<std::string_view> parts =
      fuzz::SplitOnNul(fuzz::AsText(data, size), 1 + 2 * kMaxMessages);
  static const Tokenizer* const chatml = fuzz::ChatMLTokenizer("").release();
  const std::unique_ptr<Tokenizer> tok = fuzz::WithChatTemplate(chatml, std::string(parts[0]));
  std::vector<ChatMessage> messages;
  for (size_t i = 1; i + 1 < parts.size(); i += 2) {
    messages.push_back({std::string(parts[i]), std::string(parts[i + 1])});
  }
  (void)ChatMLDefaultSystem(tok->chat_template());
  absl::StatusOr<RenderedPrompt> r = RenderChatPrompt(*tok, messages);
  fuzz::Report("RenderChatPrompt", r.status());
  if (!r.ok()) return 0;

  if (r->contents.size() != messages.size()) fuzz::InvariantFailed("one content span per message");
  size_t previous_end = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const TextSpan& s = r->contents[i];
    if (s.begin < previous_end || s.end < s.begin || s.end > r->text.size()) {
      fuzz::InvariantFailed("content spans are sorted, disjoint and inside the text");
    }
    if (std::string_view(r->text).substr(s.begin, s.end - s.begin) != messages[i].content) {
      fuzz::InvariantFailed("a content span does not hold its message's content");
    }
    previous_end = s.end;
  }

  const int special = CountSpecial(*tok, r->Encode(*tok, /*parse_special_in_content=*/false));
  (void)CountSpecial(*tok, r->Encode(*tok, /*parse_special_in_content=*/true));
  std::vector<ChatMessage> emptied = messages;
  for (ChatMessage& m : emptied) m.content.clear();
  absl::StatusOr<RenderedPrompt> bare = RenderChatPrompt(*tok, emptied);
  if (!bare.ok()) fuzz::InvariantFailed("emptying the contents made the chat invalid");
  if (CountSpecial(*tok, bare->Encode(*tok, false)) != special) {
    fuzz::InvariantFailed("a message's content produced a special token");
  }
  return 0;
}
