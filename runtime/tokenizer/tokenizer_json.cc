// Tokenizer::FromTokenizerJson: reads a HF `tokenizer.json` (byte-level BPE)
// and, when present beside it, `tokenizer_config.json` and
// `chat_template.jinja`.
//
// Accepted: model.type "BPE" (merges as "a b" strings or ["a", "b"] pairs,
// `ignore_merges`); no normalizer; a pre-tokenizer that is one of
//   ByteLevel(add_prefix_space=false, use_regex=true)                 -> kGpt2
//   Sequence[Digits(individual_digits=true), ByteLevel(same)]         -> kSmolLm
//   Sequence[Split(Llama-3 regex, Isolated), ByteLevel(use_regex=false)] -> kLlama3
// a ByteLevel decoder; and a post-processor that is absent, ByteLevel, or a
// TemplateProcessing that at most puts one special token (the BOS) before
// the text. Everything else is refused with an error naming what was found.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {
namespace {

using json = nlohmann::json;

// Ids above this are refused before any table is sized by them.
constexpr int64_t kMaxVocab = int64_t{1} << 24;
// nlohmann parses any nesting iteratively, but dump() (in messages) recurses:
// deeper documents are refused while parsing (found with
// tests/fuzz/tokenizer_json_fuzz). Real files nest about 6 deep.
constexpr int kMaxJsonDepth = 64;

constexpr absl::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr absl::string_view kSupportedPreTokenizers =
    "ByteLevel(add_prefix_space=false), "
    "Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false)], "
    "Sequence[Split(Llama-3 regex, behavior=Isolated), ByteLevel(add_prefix_space=false, "
    "use_regex=false)]";

// Errors name the file and the key path inside it.
class JsonErrors {
 public:
  explicit JsonErrors(std::string file) : file_(std::move(file)) {}
  absl::Status Error(absl::string_view key, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", key, ": ", message));
  }
  absl::Status Expect(const json& j, json::value_t type, absl::string_view key,
                      absl::string_view expected) const {
    if (j.type() == type) return absl::OkStatus();
    return Error(key, absl::StrCat("expected ", expected, ", found ", j.type_name()));
  }

 private:
  std::string file_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the file"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return std::move(buffer).str();
}

// Thrown by the parse callback below to stop at kMaxJsonDepth.
struct JsonTooDeep {};

// Parses `text`; `path` names it in messages.
absl::StatusOr<json> ParseJson(std::string_view text, const std::string& path) {
  try {
    return json::parse(text, [](int depth, json::parse_event_t event, const json&) {
      if ((event == json::parse_event_t::object_start ||
           event == json::parse_event_t::array_start) && depth >= kMaxJsonDepth) {
        throw JsonTooDeep();
      }
      return true;
    });
  } catch (const JsonTooDeep&) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": nests arrays and objects deeper than ", kMaxJsonDepth,
                     " levels; a tokenizer needs a few"));
  } catch (const json::parse_error& e) {
    // what() reads "[json.exception.parse_error.101] parse error at line L, column C: ...".
    absl::string_view what = e.what();
    if (const size_t p = what.find("] "); p != absl::string_view::npos) what.remove_prefix(p + 2);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not valid JSON (at byte ", e.byte, "): ", what));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
}

// Where tokenizer_config.json lies beside the tokenizer.json at `path`.
std::string ConfigPathBeside(const std::string& path) {
  return (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
}

// A value as one line of JSON for messages, cut to a readable length.
std::string Brief(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

// A string quoted and escaped for messages ("\n" stays on one line).
std::string Quote(const std::string& s) { return Brief(json(s)); }

// `j[key]`, or null when j is not an object or has no such key.
const json& Field(const json& j, absl::string_view key) {
  static const json kNull;
  auto it = j.find(std::string(key));
  return it == j.end() ? kNull : *it;
}

absl::StatusOr<bool> OptionalBool(const JsonErrors& err, const json& obj, absl::string_view key,
                                  absl::string_view path, bool default_value) {
  const json& v = Field(obj, key);
  if (v.is_null()) return default_value;
  if (!v.is_boolean()) {
    return err.Error(absl::StrCat(path, ".", key),
                     absl::StrCat("expected a boolean, found ", v.type_name()));
  }
  return v.get<bool>();
}

absl::StatusOr<int32_t> TokenIdValue(const JsonErrors& err, const json& v, absl::string_view key) {
  if (!v.is_number_integer()) {
    return err.Error(key, absl::StrCat("expected an integer id, found ", v.type_name()));
  }
  const int64_t id = v.get<int64_t>();
  if (id < 0 || id >= kMaxVocab) {
    return err.Error(key, absl::StrCat("id ", id, " is outside [0, ", kMaxVocab, ")"));
  }
  return static_cast<int32_t>(id);
}

// Places `text` at `id`, refusing an id that already holds another text.
// A map, not a table indexed by id: a lone id of 2^24 - 1 must not size one
// (found with tests/fuzz/tokenizer_json_fuzz).
absl::Status PlaceToken(const JsonErrors& err, absl::string_view key, int32_t id,
                        const std::string& text, std::map<int32_t, std::string>* tokens) {
  auto [slot, inserted] = tokens->try_emplace(id, text);
  if (!inserted && slot->second != text) {
    return err.Error(key, absl::StrCat("id ", id, " is given to both ", Quote(slot->second),
                                       " and ", Quote(text)));
  }
  return absl::OkStatus();
}

absl::Status ParseModel(const JsonErrors& err, const json& model,
                        std::map<int32_t, std::string>* tokens, BpeVocab* vocab) {
  TS_RETURN_IF_ERROR(err.Expect(model, json::value_t::object, "model", "an object"));
  const json& type = Field(model, "type");
  if (!type.is_string() || type.get<std::string>() != "BPE") {
    return err.Error(
        "model.type",
        absl::StrCat("the model is ", type.is_string() ? type.get<std::string>() : Brief(type),
                     "; only BPE is supported"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json& v = Field(model, key);
    if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty())) {
      return err.Error(absl::StrCat("model.", key),
                       absl::StrCat("found ", Brief(v), "; only null or \"\" is supported"));
    }
  }
  const json& dropout = Field(model, "dropout");
  if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
    return err.Error("model.dropout",
                     absl::StrCat("found ", Brief(dropout), "; only null is supported"));
  }
  TS_ASSIGN_OR_RETURN(const bool byte_fallback,
                      OptionalBool(err, model, "byte_fallback", "model", false));
  if (byte_fallback) {
    return err.Error("model.byte_fallback", "true is not supported (byte-level BPE needs none)");
  }
  TS_ASSIGN_OR_RETURN(vocab->ignore_merges,
                      OptionalBool(err, model, "ignore_merges", "model", false));

  const json& v = Field(model, "vocab");
  TS_RETURN_IF_ERROR(
      err.Expect(v, json::value_t::object, "model.vocab", "an object of token -> id"));
  for (const auto& [text, id_json] : v.items()) {
    const std::string key = absl::StrCat("model.vocab[", Quote(text), "]");
    TS_ASSIGN_OR_RETURN(const int32_t id, TokenIdValue(err, id_json, key));
    TS_RETURN_IF_ERROR(PlaceToken(err, key, id, text, tokens));
  }

  const json& merges = Field(model, "merges");
  if (!merges.is_null()) {
    TS_RETURN_IF_ERROR(err.Expect(merges, json::value_t::array, "model.merges", "an array"));
    vocab->merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      const std::string key = absl::StrCat("model.merges[", i, "]");
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
          return err.Error(key,
                           absl::StrCat(Quote(s), " is not two tokens separated by one space"));
        }
        vocab->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        vocab->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return err.Error(key,
                         absl::StrCat("found ", Brief(m), "; expected \"a b\" or [\"a\", \"b\"]"));
      }
    }
  }

  const json& unk = Field(model, "unk_token");
  if (!unk.is_null()) {
    // An unknown token only matters for bytes missing from the alphabet;
    // HF would emit it there, which this tokenizer does not model.
    TS_RETURN_IF_ERROR(
        err.Expect(unk, json::value_t::string, "model.unk_token", "a string or null"));
    const json& vocab_json = Field(model, "vocab");
    for (int b = 0; b < 256; ++b) {
      if (!vocab_json.contains(std::string(ByteLevelUtf8(static_cast<uint8_t>(b))))) {
        return err.Error("model.unk_token",
                         absl::StrCat("an unknown token is set and byte ", b,
                                      " has no token; only complete byte alphabets are supported"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseAddedTokens(const JsonErrors& err, const json& added,
                              std::map<int32_t, std::string>* tokens, BpeVocab* vocab) {
  if (added.is_null()) return absl::OkStatus();
  TS_RETURN_IF_ERROR(err.Expect(added, json::value_t::array, "added_tokens", "an array"));
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    const std::string key = absl::StrCat("added_tokens[", i, "]");
    TS_RETURN_IF_ERROR(err.Expect(a, json::value_t::object, key, "an object"));
    TS_ASSIGN_OR_RETURN(const int32_t id, TokenIdValue(err, Field(a, "id"), key + ".id"));
    const json& content = Field(a, "content");
    TS_RETURN_IF_ERROR(err.Expect(content, json::value_t::string, key + ".content", "a string"));
    if (content.get_ref<const std::string&>().empty()) {
      return err.Error(key + ".content", "is empty");
    }
    for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
      TS_ASSIGN_OR_RETURN(const bool set, OptionalBool(err, a, flag, key, false));
      if (set) return err.Error(absl::StrCat(key, ".", flag), "true is not supported (only false)");
    }
    TS_ASSIGN_OR_RETURN(const bool special, OptionalBool(err, a, "special", key, false));
    TS_ASSIGN_OR_RETURN(const bool normalized, OptionalBool(err, a, "normalized", key, !special));
    TS_RETURN_IF_ERROR(PlaceToken(err, key, id, content.get<std::string>(), tokens));
    vocab->added.push_back({id, special, normalized});
  }
  return absl::OkStatus();
}

std::string TypeOf(const json& j) {
  if (j.is_object() && Field(j, "type").is_string()) return Field(j, "type").get<std::string>();
  return Brief(j);
}

// Checks a ByteLevel step; `use_regex` is what the supported form needs.
absl::Status CheckByteLevel(const JsonErrors& err, const json& j, absl::string_view key,
                            bool use_regex) {
  if (!j.is_object() || TypeOf(j) != "ByteLevel") {
    return err.Error(
        key, absl::StrCat("found ", TypeOf(j),
                          " where ByteLevel was expected; supported: ", kSupportedPreTokenizers));
  }
  TS_ASSIGN_OR_RETURN(const bool prefix, OptionalBool(err, j, "add_prefix_space", key, false));
  if (prefix) {
    return err.Error(absl::StrCat(key, ".add_prefix_space"), "true is not supported (only false)");
  }
  TS_ASSIGN_OR_RETURN(const bool regex, OptionalBool(err, j, "use_regex", key, true));
  if (regex != use_regex) {
    return err.Error(
        absl::StrCat(key, ".use_regex"),
        absl::StrCat("found ", regex ? "true" : "false", "; supported: ", kSupportedPreTokenizers));
  }
  return absl::OkStatus();
}

absl::StatusOr<PreTokenizer> ParsePreTokenizer(const JsonErrors& err, const json& pre) {
  constexpr absl::string_view kKey = "pre_tokenizer";
  if (pre.is_object() && TypeOf(pre) == "ByteLevel") {
    TS_RETURN_IF_ERROR(CheckByteLevel(err, pre, kKey, /*use_regex=*/true));
    return PreTokenizer::kGpt2;
  }
  const json& steps = pre.is_object() ? Field(pre, "pretokenizers") : json();
  if (TypeOf(pre) != "Sequence" || !steps.is_array() || steps.size() != 2) {
    std::string found = TypeOf(pre);
    if (steps.is_array()) {
      std::vector<std::string> types;
      for (const json& s : steps) types.push_back(TypeOf(s));
      found = absl::StrCat("Sequence[", absl::StrJoin(types, ", "), "]");
    }
    return err.Error(kKey, absl::StrCat("found ", found, "; supported: ", kSupportedPreTokenizers));
  }
  const json& first = steps[0];
  const std::string first_type = TypeOf(first);
  if (first_type == "Digits") {
    TS_ASSIGN_OR_RETURN(
        const bool individual,
        OptionalBool(err, first, "individual_digits", "pre_tokenizer.pretokenizers[0]", false));
    if (!individual) {
      return err.Error("pre_tokenizer.pretokenizers[0].individual_digits",
                       "false is not supported (only true)");
    }
    TS_RETURN_IF_ERROR(
        CheckByteLevel(err, steps[1], "pre_tokenizer.pretokenizers[1]", /*use_regex=*/true));
    return PreTokenizer::kSmolLm;
  }
  if (first_type == "Split") {
    const json& pattern = Field(first, "pattern");
    const json& regex = pattern.is_object() ? Field(pattern, "Regex") : json();
    if (!regex.is_string() || regex.get<std::string>() != kLlama3Regex) {
      return err.Error("pre_tokenizer.pretokenizers[0].pattern",
                       absl::StrCat("found ", Brief(pattern),
                                    "; only the Llama-3 regex is supported: ", kLlama3Regex));
    }
    const json& behavior = Field(first, "behavior");
    if (!behavior.is_string() || behavior.get<std::string>() != "Isolated") {
      return err.Error("pre_tokenizer.pretokenizers[0].behavior",
                       absl::StrCat("found ", Brief(behavior), "; only \"Isolated\" is supported"));
    }
    TS_ASSIGN_OR_RETURN(const bool invert, OptionalBool(err, first, "invert",
                                                        "pre_tokenizer.pretokenizers[0]", false));
    if (invert) return err.Error("pre_tokenizer.pretokenizers[0].invert", "true is not supported");
    TS_RETURN_IF_ERROR(
        CheckByteLevel(err, steps[1], "pre_tokenizer.pretokenizers[1]", /*use_regex=*/false));
    return PreTokenizer::kLlama3;
  }
  return err.Error(kKey, absl::StrCat("found Sequence[", first_type, ", ", TypeOf(steps[1]),
                                      "]; supported: ", kSupportedPreTokenizers));
}

// The id of the token a TemplateProcessing puts before the text, if any.
absl::StatusOr<std::optional<int32_t>> ParseTemplate(const JsonErrors& err, const json& t,
                                                     absl::string_view key) {
  const json& single = Field(t, "single");
  TS_RETURN_IF_ERROR(
      err.Expect(single, json::value_t::array, absl::StrCat(key, ".single"), "an array"));
  std::optional<std::string> prefix;
  bool seen_text = false;
  for (const json& piece : single) {
    if (piece.is_object() && piece.contains("Sequence")) {
      seen_text = true;
      continue;
    }
    const json& special = piece.is_object() ? Field(piece, "SpecialToken") : json();
    const json& name = special.is_object() ? Field(special, "id") : json();
    if (!name.is_string()) {
      return err.Error(absl::StrCat(key, ".single"),
                       absl::StrCat("unexpected item ", Brief(piece)));
    }
    if (seen_text || prefix) {
      return err.Error(absl::StrCat(key, ".single"),
                       absl::StrCat("adds ", Quote(name.get<std::string>()),
                                    " after the text or as a second prefix; only one leading "
                                    "token (BOS) is supported"));
    }
    prefix = name.get<std::string>();
  }
  if (!prefix) return std::optional<int32_t>();
  const std::string ids_key = absl::StrCat(key, ".special_tokens[", Quote(*prefix), "].ids");
  const json& specials = Field(t, "special_tokens");
  const json& entry = specials.is_object() ? Field(specials, *prefix) : json();
  const json& ids = entry.is_object() ? Field(entry, "ids") : json();
  if (!ids.is_array() || ids.size() != 1) {
    return err.Error(ids_key,
                     absl::StrCat("expected a list of exactly one id, found ", Brief(ids)));
  }
  TS_ASSIGN_OR_RETURN(const int32_t id, TokenIdValue(err, ids[0], ids_key));
  return std::optional<int32_t>(id);
}

absl::StatusOr<std::optional<int32_t>> ParsePostProcessor(const JsonErrors& err, const json& post) {
  if (post.is_null()) return std::optional<int32_t>();
  const std::string type = TypeOf(post);
  if (type == "ByteLevel") return std::optional<int32_t>();
  if (type == "TemplateProcessing") return ParseTemplate(err, post, "post_processor");
  if (type == "Sequence" && Field(post, "processors").is_array()) {
    std::optional<int32_t> prefix;
    bool seen_template = false;
    const json& steps = Field(post, "processors");
    for (size_t i = 0; i < steps.size(); ++i) {
      const std::string key = absl::StrCat("post_processor.processors[", i, "]");
      const std::string step = TypeOf(steps[i]);
      if (step == "ByteLevel") continue;
      if (step != "TemplateProcessing" || seen_template) {
        return err.Error(
            key, absl::StrCat("found ", step, "; supported: ByteLevel and one TemplateProcessing"));
      }
      seen_template = true;
      TS_ASSIGN_OR_RETURN(prefix, ParseTemplate(err, steps[i], key));
    }
    return prefix;
  }
  return err.Error(
      "post_processor",
      absl::StrCat("found ", type,
                   "; supported: null, ByteLevel, TemplateProcessing, or a Sequence of them"));
}

// A token named in tokenizer_config.json: "text", {"content": "text"} or null.
absl::StatusOr<std::optional<std::string>> ConfigTokenName(const JsonErrors& err,
                                                           const json& config,
                                                           absl::string_view key) {
  const json& v = Field(config, key);
  if (v.is_null()) return std::optional<std::string>();
  if (v.is_string()) return std::optional<std::string>(v.get<std::string>());
  if (v.is_object() && Field(v, "content").is_string()) {
    return std::optional<std::string>(Field(v, "content").get<std::string>());
  }
  return err.Error(key,
                   absl::StrCat("expected a string, {\"content\": ...} or null, found ", Brief(v)));
}

absl::StatusOr<std::optional<int32_t>> IdOf(const JsonErrors& err, const BpeVocab& vocab,
                                            absl::string_view key,
                                            const std::optional<std::string>& name) {
  if (!name) return std::optional<int32_t>();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    if (vocab.tokens[id] == *name) return std::optional<int32_t>(static_cast<int32_t>(id));
  }
  return err.Error(key, absl::StrCat(Quote(*name), " is not in the vocabulary"));
}

// The tokenizer_config.json and chat_template.jinja of `files`, when
// present. `template_bos` is the token the post-processor prepends.
absl::Status ApplyConfig(const TokenizerJsonFiles& files, std::optional<int32_t> template_bos,
                         BpeVocab* vocab) {
  const std::string& path = files.path;
  const std::string config_path = ConfigPathBeside(path);
  vocab->bos_id = template_bos;
  vocab->add_bos = template_bos.has_value();

  if (files.tokenizer_config_json) {
    TS_ASSIGN_OR_RETURN(const json config, ParseJson(*files.tokenizer_config_json, config_path));
    const JsonErrors err(config_path);
    TS_RETURN_IF_ERROR(err.Expect(config, json::value_t::object, "(top level)", "an object"));
    TS_ASSIGN_OR_RETURN(const std::optional<std::string> bos,
                        ConfigTokenName(err, config, "bos_token"));
    TS_ASSIGN_OR_RETURN(const std::optional<std::string> eos,
                        ConfigTokenName(err, config, "eos_token"));
    if (bos) {
      TS_ASSIGN_OR_RETURN(vocab->bos_id, IdOf(err, *vocab, "bos_token", bos));
      if (template_bos && *template_bos != *vocab->bos_id) {
        return err.Error("bos_token",
                         absl::StrCat(Quote(*bos), " is id ", *vocab->bos_id, ", but ", path,
                                      " puts id ", *template_bos, " before the text"));
      }
    }
    TS_ASSIGN_OR_RETURN(vocab->eos_id, IdOf(err, *vocab, "eos_token", eos));
    TS_ASSIGN_OR_RETURN(vocab->add_bos,
                        OptionalBool(err, config, "add_bos_token", "(top level)", vocab->add_bos));
    const json& chat = Field(config, "chat_template");
    if (chat.is_string()) {
      vocab->chat_template = chat.get<std::string>();
    } else if (chat.is_array()) {
      // Named templates: [{"name": ..., "template": ...}]; take "default".
      for (const json& t : chat) {
        if (t.is_object() && Field(t, "name") == "default" && Field(t, "template").is_string()) {
          vocab->chat_template = Field(t, "template").get<std::string>();
        }
      }
    } else if (!chat.is_null()) {
      return err.Error(
          "chat_template",
          absl::StrCat("expected a string or a list of named templates, found ", chat.type_name()));
    }
  }
  if (vocab->chat_template.empty() && files.chat_template_jinja) {
    vocab->chat_template = *files.chat_template_jinja;
  }
  return absl::OkStatus();
}

absl::StatusOr<BpeVocab> ParseTokenizerJson(const TokenizerJsonFiles& files, const json& root) {
  const JsonErrors err(files.path);
  TS_RETURN_IF_ERROR(err.Expect(root, json::value_t::object, "(top level)", "an object"));
  BpeVocab vocab;
  std::map<int32_t, std::string> tokens;
  TS_RETURN_IF_ERROR(ParseModel(err, Field(root, "model"), &tokens, &vocab));
  TS_RETURN_IF_ERROR(ParseAddedTokens(err, Field(root, "added_tokens"), &tokens, &vocab));
  vocab.tokens.reserve(tokens.size());
  for (auto& [id, text] : tokens) {
    // In id order: the first id that is not the next one shows the gap.
    if (static_cast<size_t>(id) != vocab.tokens.size()) {
      return err.Error("model.vocab", absl::StrCat("id ", vocab.tokens.size(),
                                                   " has no token (ids must be dense)"));
    }
    vocab.tokens.push_back(std::move(text));
  }

  const json& normalizer = Field(root, "normalizer");
  if (!normalizer.is_null()) {
    return err.Error("normalizer",
                     absl::StrCat("found ", TypeOf(normalizer), "; only null is supported"));
  }
  TS_ASSIGN_OR_RETURN(vocab.pre, ParsePreTokenizer(err, Field(root, "pre_tokenizer")));
  const json& decoder = Field(root, "decoder");
  if (TypeOf(decoder) != "ByteLevel") {
    return err.Error("decoder",
                     absl::StrCat("found ", TypeOf(decoder), "; only ByteLevel is supported"));
  }
  TS_ASSIGN_OR_RETURN(const std::optional<int32_t> template_bos,
                      ParsePostProcessor(err, Field(root, "post_processor")));
  TS_RETURN_IF_ERROR(ApplyConfig(files, template_bos, &vocab));
  return vocab;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(const std::string& path) {
  TokenizerJsonFiles files;
  files.path = path;
  TS_ASSIGN_OR_RETURN(files.tokenizer_json, ReadFile(path));
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (const std::string config = ConfigPathBeside(path); std::filesystem::exists(config, ec)) {
    TS_ASSIGN_OR_RETURN(files.tokenizer_config_json, ReadFile(config));
  }
  if (const std::string jinja = (dir / "chat_template.jinja").string();
      std::filesystem::exists(jinja, ec)) {
    TS_ASSIGN_OR_RETURN(files.chat_template_jinja, ReadFile(jinja));
  }
  return FromTokenizerJsonFiles(files);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJsonFiles(
    const TokenizerJsonFiles& files) {
  const std::string& path = files.path;
  TS_ASSIGN_OR_RETURN(const json root, ParseJson(files.tokenizer_json, path));
  absl::StatusOr<BpeVocab> vocab;
  try {
    vocab = ParseTokenizerJson(files, root);
  } catch (const json::exception& e) {
    // Every access above is type-checked first; this is a backstop.
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": unexpected JSON structure: ", e.what()));
  }
  if (!vocab.ok()) return vocab.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = FromVocab(*std::move(vocab));
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

}  // namespace tierserve
