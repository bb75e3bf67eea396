// Byte-level BPE tokenizer (GPT-2 family: GPT-2, SmolLM2, Llama-3 style),
// built from a HF `tokenizer.json` or from GGUF tokenizer metadata.
//
// Thread-safety: immutable after construction; Encode/Decode are const and
// safe to call concurrently.
#ifndef TIERSERVE_RUNTIME_TOKENIZER_TOKENIZER_H_
#define TIERSERVE_RUNTIME_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tierserve {

// Bytes [begin, end) of a text.
struct TextSpan {
  size_t begin = 0;
  size_t end = 0;
};

class GgufFile;

// The files of a HF tokenizer, already read: tokenizer.json and, when present
// beside it, tokenizer_config.json and chat_template.jinja.
struct TokenizerJsonFiles {
  std::string path;  // of tokenizer.json, for messages (the config's name the file beside it)
  std::string tokenizer_json;
  std::optional<std::string> tokenizer_config_json;
  std::optional<std::string> chat_template_jinja;
};

// How text is split before BPE.
enum class PreTokenizer {
  kGpt2,     // the GPT-2 regex
  kSmolLm,   // every digit alone, then the GPT-2 regex
  kLlama3,   // the Llama-3 regex
};

// Everything that defines a byte-level BPE tokenizer, whatever file it came from.
struct BpeVocab {
  std::vector<std::string> tokens;  // id -> token text in byte-level form ("Ġthe")
  std::vector<std::pair<std::string, std::string>> merges;  // highest priority first
  // Added tokens matched literally in the input before BPE (never split),
  // with whether each is special (dropped by Decode(skip_special)).
  struct Added {
    int32_t id;
    bool special;
    // HF's `normalized`: such tokens are looked for only in the text left
    // between the matches of the others (HF matches the two sets in turn).
    bool normalized = false;
  };
  std::vector<Added> added;
  PreTokenizer pre = PreTokenizer::kGpt2;
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  bool add_bos = false;
  // When true a whole pre-token found in the vocabulary is emitted as is,
  // without merging (HF `ignore_merges`, set by Llama-3 style tokenizers).
  bool ignore_merges = false;
  std::string chat_template;
};

class Tokenizer {
 public:
  // From an already-parsed vocabulary; fails on inconsistent input (a merge
  // or added token naming an unknown token, duplicate token texts, ...).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocab(BpeVocab vocab);
  // From a HF tokenizer.json (model type BPE with a ByteLevel pre-tokenizer,
  // optionally behind Digits / Split steps). A tokenizer_config.json beside it
  // may name bos_token / eos_token, set add_bos_token and hold the chat
  // template; a chat_template.jinja beside it is read when the config has none.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(const std::string& path);
  // The same from files already read (FromTokenizerJson reads them, then calls this).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJsonFiles(
      const TokenizerJsonFiles& files);
  // From the `tokenizer.ggml.*` keys of a GGUF file (model `gpt2`).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);

  virtual ~Tokenizer() = default;

  // Text -> ids. Added/special tokens that appear literally in `text` are
  // matched as such. A BOS token is prepended when the tokenizer's config
  // asks for one and `add_special` is true.
  std::vector<int32_t> Encode(std::string_view text, bool add_special = true) const {
    return Encode(text, {}, add_special);
  }
  // The same, except that inside the `literal` byte ranges of `text` added
  // tokens are not matched: their text is tokenized as plain text (a chat
  // message's content cannot forge `<|im_start|>system`). Pre-tokenization
  // still runs across range edges, so text without added tokens gets the
  // ids it gets from Encode(text). Ranges are sorted and disjoint.
  virtual std::vector<int32_t> Encode(std::string_view text, absl::Span<const TextSpan> literal,
                                      bool add_special = true) const = 0;

  // ids -> text, lossy UTF-8 (invalid sequences become U+FFFD) as HF does.
  // Special tokens are dropped when `skip_special` is true.
  virtual std::string Decode(absl::Span<const int32_t> ids, bool skip_special = false) const = 0;

  // The raw bytes a token stands for (after the byte-level decoding).
  virtual std::string TokenBytes(int32_t id) const = 0;
  // The token's vocabulary string (e.g. "Ġthe"), or "" when out of range.
  virtual std::string_view TokenText(int32_t id) const = 0;
  virtual std::optional<int32_t> TokenId(std::string_view token_text) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;

  virtual int32_t vocab_size() const = 0;
  // The most input bytes one token can stand for: a text of n bytes encodes
  // to at least n / max_token_bytes() tokens, a bound known before encoding.
  virtual size_t max_token_bytes() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  // The chat template (Jinja source) the model ships, or "" if none.
  virtual const std::string& chat_template() const = 0;
};

// Turns a stream of token ids into text deltas that are always whole UTF-8
// sequences: bytes of an incomplete character are held back until it
// completes (or emitted as U+FFFD at Finish()).
//
// Thread-safety: not thread-safe; one per sequence.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer* tokenizer, bool skip_special = true);
  // Appends a token and returns the text that became complete (maybe "").
  std::string Push(int32_t id);
  // Returns whatever is held back, invalid bytes replaced by U+FFFD.
  std::string Finish();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

// A chat message for ApplyChatTemplate.
struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// Renders messages in the ChatML form (`<|im_start|>role\n...<|im_end|>\n`),
// as SmolLM2's template does: when the first message is not a system message,
// `default_system` is inserted first (skipped when empty). With
// `add_generation_prompt` the text ends with `<|im_start|>assistant\n`.
// `content_spans`, when given, receives where each message's content lies
// in the text (the default system prompt is the template's own text).
std::string ApplyChatMLTemplate(absl::Span<const ChatMessage> messages, bool add_generation_prompt,
                                std::string_view default_system,
                                std::vector<TextSpan>* content_spans = nullptr);

// The default system prompt of SmolLM2-Instruct's chat template.
inline constexpr std::string_view kSmolLm2DefaultSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_TOKENIZER_H_
