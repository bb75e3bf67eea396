// Tokenizer::FromGguf: the `tokenizer.ggml.*` keys of a GGUF file as a BpeVocab.
#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {
namespace {

// GGUF token types (llama.cpp's llama_token_type).
constexpr int64_t kTokenControl = 3;
constexpr int64_t kTokenUserDefined = 4;

absl::StatusOr<PreTokenizer> PreTokenizerFor(const std::string& path, const std::string& pre,
                                             bool* ignore_merges) {
  *ignore_merges = false;
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default") return PreTokenizer::kGpt2;
  if (pre == "smollm") return PreTokenizer::kSmolLm;
  if (pre == "llama-bpe" || pre == "llama3") {
    *ignore_merges = true;
    return PreTokenizer::kLlama3;
  }
  return absl::UnimplementedError(absl::StrCat(
      path, ": tokenizer.ggml.pre \"", pre,
      "\" is not supported; supported: gpt-2, default, smollm, llama-bpe"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  const std::string& path = gguf.Source();
  auto named = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  TS_ASSIGN_OR_RETURN(std::string model, gguf.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::UnimplementedError(absl::StrCat(
        path, ": tokenizer.ggml.model \"", model,
        "\" is not supported; supported: gpt2 (byte-level BPE)"));
  }
  BpeVocab v;
  std::string pre = "default";
  if (gguf.Has("tokenizer.ggml.pre")) {
    TS_ASSIGN_OR_RETURN(pre, gguf.GetString("tokenizer.ggml.pre"));
  }
  TS_ASSIGN_OR_RETURN(v.pre, PreTokenizerFor(path, pre, &v.ignore_merges));
  TS_ASSIGN_OR_RETURN(v.tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  TS_ASSIGN_OR_RETURN(std::vector<std::string> merges, gguf.GetStringArray("tokenizer.ggml.merges"));
  v.merges.reserve(merges.size());
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tokenizer.ggml.merges entry \"", m, "\" is not of the form \"a b\""));
    }
    v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  if (gguf.Has("tokenizer.ggml.token_type")) {
    TS_ASSIGN_OR_RETURN(std::vector<int64_t> types, gguf.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != v.tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tokenizer.ggml.token_type has ", types.size(), " entries for ", v.tokens.size(),
          " tokens"));
    }
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == kTokenControl || types[i] == kTokenUserDefined) {
        v.added.push_back({static_cast<int32_t>(i), /*special=*/types[i] == kTokenControl});
      }
    }
  }
  auto id = [&](const char* key, std::optional<int32_t>* out) -> absl::Status {
    if (!gguf.Has(key)) return absl::OkStatus();
    absl::StatusOr<uint64_t> x = gguf.GetUint(key);
    if (!x.ok()) return named(x.status());
    if (*x >= v.tokens.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key, " = ", *x, " is outside the vocabulary of ", v.tokens.size()));
    }
    *out = static_cast<int32_t>(*x);
    return absl::OkStatus();
  };
  TS_RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", &v.bos_id));
  TS_RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", &v.eos_id));
  // llama.cpp adds no BOS for byte-level BPE vocabularies unless told to.
  if (gguf.Has("tokenizer.ggml.add_bos_token")) {
    TS_ASSIGN_OR_RETURN(v.add_bos, gguf.GetBool("tokenizer.ggml.add_bos_token"));
  }
  if (gguf.Has("tokenizer.chat_template")) {
    TS_ASSIGN_OR_RETURN(v.chat_template, gguf.GetString("tokenizer.chat_template"));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = FromVocab(std::move(v));
  if (!t.ok()) return named(t.status());
  return t;
}

}  // namespace tierserve
