#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tokenizer/byte_level.h"

namespace tierserve::fuzz {

std::vector<std::string_view> SplitOnNul(std::string_view input, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t nul = input.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(input.substr(0, nul));
    input.remove_prefix(nul + 1);
  }
  parts.push_back(input);
  return parts;
}

const char kSmolLm2ChatTemplate[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

void Report(const char* what, const absl::Status& status) {
  static const bool verbose = std::getenv("TIERSERVE_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
}

void InvariantFailed(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

std::unique_ptr<Tokenizer> ChatMLTokenizer(std::string chat_template) {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteLevelUtf8(static_cast<uint8_t>(b)));
  // Merges in priority order; each result is a token of its own.
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"e", "r"},
      {"o", "n"}, {"Ġ", "s"}, {"r", "e"}, {"Ġ", "w"}, {"a", "t"}, {"e", "n"},
      {"Ċ", "Ċ"}, {"Ġ", "Ġ"}, {"ĠĠ", "ĠĠ"}, {"in", "g"}, {"Ġthe", "r"}, {"Ġs", "t"}};
  for (const auto& [a, b] : merges) {
    v.merges.emplace_back(a, b);
    v.tokens.push_back(a + b);
  }
  for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    v.added.push_back({static_cast<int32_t>(v.tokens.size()), /*special=*/true,
                       /*normalized=*/false});
    v.tokens.emplace_back(special);
  }
  v.bos_id = v.added[1].id;
  v.eos_id = v.added[2].id;
  v.chat_template = std::move(chat_template);
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromVocab(std::move(v));
  if (!t.ok()) {
    std::fprintf(stderr, "ChatMLTokenizer: %s\n", std::string(t.status().message()).c_str());
    std::abort();
  }
  return *std::move(t);
}

namespace {

class TemplateOverride final : public Tokenizer {
 public:
  TemplateOverride(const Tokenizer* base, std::string chat_template)
      : base_(base), chat_template_(std::move(chat_template)) {}

  std::vector<int32_t> Encode(std::string_view text, absl::Span<const TextSpan> literal,
                              bool add_special) const override {
    return base_->Encode(text, literal, add_special);
  }
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special) const override {
    return base_->Decode(ids, skip_special);
  }
  std::string TokenBytes(int32_t id) const override { return base_->TokenBytes(id); }
  std::string_view TokenText(int32_t id) const override { return base_->TokenText(id); }
  std::optional<int32_t> TokenId(std::string_view text) const override {
    return base_->TokenId(text);
  }
  bool IsSpecial(int32_t id) const override { return base_->IsSpecial(id); }
  int32_t vocab_size() const override { return base_->vocab_size(); }
  size_t max_token_bytes() const override { return base_->max_token_bytes(); }
  std::optional<int32_t> bos_id() const override { return base_->bos_id(); }
  std::optional<int32_t> eos_id() const override { return base_->eos_id(); }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  const Tokenizer* base_;
  std::string chat_template_;
};

}  // namespace

std::unique_ptr<Tokenizer> WithChatTemplate(const Tokenizer* base, std::string chat_template) {
  return std::make_unique<TemplateOverride>(base, std::move(chat_template));
}

}  // namespace tierserve::fuzz
