// Fuzzes the HF tokenizer reader (runtime/tokenizer/tokenizer_json.cc)
// through Tokenizer::FromTokenizerJsonFiles, then the tokenizer it builds.
//
// Input: tokenizer.json [NUL tokenizer_config.json [NUL text]]. An empty
// config part means no tokenizer_config.json. An accepted tokenizer encodes
// the text (and a fixed one); every id must be in the vocabulary, and for a
// vocabulary without added tokens whose byte alphabet covers a valid UTF-8
// text, decoding must give the text back (byte-level BPE is lossless).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_support.h"

namespace tierserve {
namespace {

// Whether tokenizer.json lists added tokens: they match their literal text,
// which need not be what their ids decode to ("Ġ" decodes to a space), so
// the lossless check does not apply.
bool HasAddedTokens(std::string_view tokenizer_json) {
  const nlohmann::json j =
      nlohmann::json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return true;
  auto it = j.find("added_tokens");
  return it != j.end() && !it->empty() && !it->is_null();
}

bool AlphabetCovers(const Tokenizer& tok, std::string_view text) {
  for (unsigned char c : text) {
    if (!tok.TokenId(ByteLevelUtf8(c)).has_value()) return false;
  }
  return true;
}

void Exercise(const Tokenizer& tok, std::string_view text, bool lossless_applies) {
  for (bool add_special : {false, true}) {
    const std::vector<int32_t> ids = tok.Encode(text, add_special);
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) {
        fuzz::InvariantFailed("Encode gave an id outside the vocabulary");
      }
    }
    const std::string decoded = tok.Decode(ids, /*skip_special=*/false);
    (void)tok.Decode(ids, /*skip_special=*/true);
    StreamingDetokenizer stream(&tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.Push(id);
    streamed += stream.Finish();
    if (lossless_applies && !add_special && LossyUtf8(text) == text &&
        AlphabetCovers(tok, text) && decoded != text) {
      fuzz::InvariantFailed("Decode(Encode(text)) is not the text");
    }
  }
}

}  // namespace
}  // namespace tierserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  const std::vector<std::string_view> parts = fuzz::SplitOnNul(fuzz::AsText(data, size), 3);
  TokenizerJsonFiles files;
  files.path = "fuzz/tokenizer.json";
  files.tokenizer_json = std::string(parts[0]);
  if (parts.size() > 1 && !parts[1].empty()) files.tokenizer_config_json = std::string(parts[1]);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromTokenizerJsonFiles(files);
  fuzz::Report("Tokenizer::FromTokenizerJsonFiles", tok.status());
  if (!tok.ok()) return 0;
  const bool lossless_applies = !HasAddedTokens(parts[0]);
  Exercise(**tok, "Hello world! The 2024 thing's <|im_start|> naïve ünï 日本 \n\n  x",
           lossless_applies);
  if (parts.size() > 2) Exercise(**tok, parts[2], lossless_applies);
  return 0;
}
