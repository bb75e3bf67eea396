#include "runtime/model/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"

namespace tierserve {

const char* ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kGpt2: return "GPT2LMHeadModel";
  }
  return "?";
}

absl::Status ModelConfig::Validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid model config: ", what));
  };
  // Every size is bounded before it sizes an allocation or a loop: far above
  // any real model, far below what would overflow or exhaust memory.
  auto range = [&](const char* what, int64_t v, int64_t hi) -> absl::Status {
    if (v > 0 && v <= hi) return absl::OkStatus();
    return bad(absl::StrCat(what, " (", v, ") is out of range; expected > 0 and at most ", hi));
  };
  TS_RETURN_IF_ERROR(range("vocab_size", vocab_size, int64_t{1} << 24));
  TS_RETURN_IF_ERROR(range("hidden size", hidden_size, int64_t{1} << 16));
  TS_RETURN_IF_ERROR(range("intermediate size", intermediate_size, int64_t{1} << 18));
  TS_RETURN_IF_ERROR(range("number of layers", num_layers, 4096));
  TS_RETURN_IF_ERROR(range("number of attention heads", num_heads, 4096));
  TS_RETURN_IF_ERROR(range("max_position_embeddings", max_position_embeddings, int64_t{1} << 24));
  if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0)
    return bad(absl::StrCat("key/value heads (", num_kv_heads,
                            ") must be > 0 and divide the attention heads (", num_heads, ")"));
  if (head_dim <= 0 || head_dim > 4096 || head_dim % 2 != 0)
    return bad(absl::StrCat("head_dim (", head_dim, ") must be an even number from 2 to 4096"));
  if (arch == Architecture::kGpt2 && head_dim * num_heads != hidden_size)
    return bad("n_embd must equal n_head * head_dim");
  if (!(norm_eps > 0)) return bad("the norm epsilon must be > 0");
  if (arch == Architecture::kLlama && !(rope_theta > 0)) return bad("rope_theta must be > 0");
  for (int32_t e : eos_token_ids)
    if (e < 0 || e >= vocab_size) return bad(absl::StrCat("eos token id ", e, " is out of range"));
  return absl::OkStatus();
}

namespace {

using json = nlohmann::json;

// Field readers that name the file and the key on error.
class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& path) : j_(j), path_(path) {}

  absl::StatusOr<int64_t> Int(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    if (!it->is_number_integer()) return WrongType(key, "an integer");
    return it->get<int64_t>();
  }
  absl::StatusOr<int64_t> IntOr(const char* key, int64_t dflt) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return dflt;
    return Int(key);
  }
  absl::StatusOr<double> Float(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) return Missing(key);
    if (!it->is_number()) return WrongType(key, "a number");
    return it->get<double>();
  }
  absl::StatusOr<double> FloatOr(const char* key, double dflt) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return dflt;
    return Float(key);
  }
  absl::StatusOr<bool> BoolOr(const char* key, bool dflt) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return dflt;
    if (!it->is_boolean()) return WrongType(key, "true or false");
    return it->get<bool>();
  }
  // An int, a list of ints, or absent.
  absl::StatusOr<std::vector<int32_t>> IdList(const char* key) const {
    std::vector<int32_t> out;
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return out;
    if (it->is_number_integer()) {
      out.push_back(it->get<int32_t>());
      return out;
    }
    if (!it->is_array()) return WrongType(key, "a token id or a list of token ids");
    for (const auto& v : *it) {
      if (!v.is_number_integer()) return WrongType(key, "a token id or a list of token ids");
      out.push_back(v.get<int32_t>());
    }
    return out;
  }

 private:
  absl::Status Missing(const char* key) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": missing required field \"", key, "\""));
  }
  absl::Status WrongType(const char* key, const char* expected) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": field \"", key, "\" must be ", expected));
  }
  const json& j_;
  const std::string& path_;
};

absl::StatusOr<ModelConfig> ParseLlama(const ConfigReader& r, const json& j,
                                       const std::string& path) {
  ModelConfig c;
  c.arch = Architecture::kLlama;
  TS_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  TS_ASSIGN_OR_RETURN(c.hidden_size, r.Int("hidden_size"));
  TS_ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size"));
  TS_ASSIGN_OR_RETURN(c.num_layers, r.Int("num_hidden_layers"));
  TS_ASSIGN_OR_RETURN(c.num_heads, r.Int("num_attention_heads"));
  TS_ASSIGN_OR_RETURN(c.num_kv_heads, r.IntOr("num_key_value_heads", c.num_heads));
  TS_ASSIGN_OR_RETURN(c.head_dim,
                      r.IntOr("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0));
  TS_ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("max_position_embeddings"));
  TS_ASSIGN_OR_RETURN(double eps, r.FloatOr("rms_norm_eps", 1e-6));
  c.norm_eps = static_cast<float>(eps);
  TS_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.BoolOr("tie_word_embeddings", false));
  TS_ASSIGN_OR_RETURN(c.attention_bias, r.BoolOr("attention_bias", false));
  TS_ASSIGN_OR_RETURN(c.mlp_bias, r.BoolOr("mlp_bias", false));
  if (auto it = j.find("hidden_act"); it != j.end() && *it != "silu") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": field \"hidden_act\" is ", it->dump(), "; LlamaForCausalLM supports \"silu\""));
  }
  // transformers 5 moves rope_theta into "rope_parameters"; 4.x keeps it at top level.
  const json* rope = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) rope = &*it;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) rope = &*it;
  double theta = 10000.0;
  if (auto it = j.find("rope_theta"); it != j.end() && it->is_number()) theta = it->get<double>();
  if (rope != nullptr) {
    ConfigReader rr(*rope, path);
    if (auto t = rope->find("rope_theta"); t != rope->end() && t->is_number()) theta = t->get<double>();
    std::string type;
    if (auto t = rope->find("rope_type"); t != rope->end() && t->is_string()) type = t->get<std::string>();
    else if (auto t2 = rope->find("type"); t2 != rope->end() && t2->is_string()) type = t2->get<std::string>();
    if (type == "llama3" || type == "linear") {
      c.rope_scaling.type = type;
      TS_ASSIGN_OR_RETURN(double f, rr.Float("factor"));
      c.rope_scaling.factor = static_cast<float>(f);
      if (type == "llama3") {
        TS_ASSIGN_OR_RETURN(double lo, rr.FloatOr("low_freq_factor", 1.0));
        TS_ASSIGN_OR_RETURN(double hi, rr.FloatOr("high_freq_factor", 4.0));
        TS_ASSIGN_OR_RETURN(c.rope_scaling.original_max_position_embeddings,
                            rr.IntOr("original_max_position_embeddings", 8192));
        c.rope_scaling.low_freq_factor = static_cast<float>(lo);
        c.rope_scaling.high_freq_factor = static_cast<float>(hi);
      }
    } else if (!type.empty() && type != "default") {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": rope type \"", type, "\" is not supported; supported: default, linear, llama3"));
    }
  }
  c.rope_theta = static_cast<float>(theta);
  TS_ASSIGN_OR_RETURN(auto bos, r.IdList("bos_token_id"));
  if (!bos.empty()) c.bos_token_id = bos[0];
  TS_ASSIGN_OR_RETURN(c.eos_token_ids, r.IdList("eos_token_id"));
  return c;
}

absl::StatusOr<ModelConfig> ParseGpt2(const ConfigReader& r, const json& j,
                                      const std::string& path) {
  ModelConfig c;
  c.arch = Architecture::kGpt2;
  TS_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  TS_ASSIGN_OR_RETURN(c.hidden_size, r.Int("n_embd"));
  TS_ASSIGN_OR_RETURN(c.num_layers, r.Int("n_layer"));
  TS_ASSIGN_OR_RETURN(c.num_heads, r.Int("n_head"));
  TS_ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("n_positions"));
  TS_ASSIGN_OR_RETURN(c.intermediate_size, r.IntOr("n_inner", 4 * c.hidden_size));
  TS_ASSIGN_OR_RETURN(double eps, r.FloatOr("layer_norm_epsilon", 1e-5));
  c.norm_eps = static_cast<float>(eps);
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.tie_word_embeddings = true;
  if (auto it = j.find("activation_function");
      it != j.end() && *it != "gelu_new" && *it != "gelu_pytorch_tanh") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": field \"activation_function\" is ", it->dump(),
                     "; GPT2LMHeadModel supports \"gelu_new\" and \"gelu_pytorch_tanh\""));
  }
  TS_ASSIGN_OR_RETURN(auto bos, r.IdList("bos_token_id"));
  if (!bos.empty()) c.bos_token_id = bos[0];
  TS_ASSIGN_OR_RETURN(c.eos_token_ids, r.IdList("eos_token_id"));
  return c;
}

}  // namespace

absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the model config"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseHfConfig(ss.str(), path);
}

absl::StatusOr<ModelConfig> ParseHfConfig(std::string_view text, const std::string& path) {
  // nlohmann parses any nesting iteratively, but dump() (in messages) recurses:
  // deeper documents are refused while parsing (found with
  // tests/fuzz/model_config_json_fuzz). A config.json nests 3 deep.
  constexpr int kMaxDepth = 64;
  bool too_deep = false;
  json j = json::parse(
      text,
      [&too_deep](int depth, json::parse_event_t event, const json&) {
        if ((event == json::parse_event_t::object_start ||
             event == json::parse_event_t::array_start) && depth >= kMaxDepth) {
          too_deep = true;
        }
        // Once too deep, everything after is discarded: cheap, and not kept.
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": nests arrays and objects deeper than ", kMaxDepth, " levels"));
  }
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  ConfigReader r(j, path);
  std::string arch;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() &&
                                         (*it)[0].is_string()) {
    arch = (*it)[0].get<std::string>();
  } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
    arch = mt->get<std::string>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": missing required field \"architectures\" (or \"model_type\")"));
  }
  absl::StatusOr<ModelConfig> c;
  if (arch == "LlamaForCausalLM" || arch == "MistralForCausalLM" || arch == "llama" ||
      arch == "mistral") {
    if (auto sw = j.find("sliding_window"); sw != j.end() && !sw->is_null()) {
      TS_ASSIGN_OR_RETURN(int64_t window, r.Int("sliding_window"));
      TS_ASSIGN_OR_RETURN(int64_t maxpos, r.Int("max_position_embeddings"));
      if (window < maxpos)
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": sliding_window attention (", window, " < max_position_embeddings ", maxpos,
            ") is not supported"));
    }
    c = ParseLlama(r, j, path);
  } else if (arch == "GPT2LMHeadModel" || arch == "gpt2") {
    c = ParseGpt2(r, j, path);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": unknown architecture \"", arch,
        "\"; supported: LlamaForCausalLM, MistralForCausalLM, GPT2LMHeadModel"));
  }
  if (!c.ok()) return c.status();
  TS_RETURN_IF_ERROR(c->Validate(path));
  return c;
}

absl::StatusOr<ModelConfig> ReadGgufConfig(const GgufFile& g) {
  const std::string& path = g.Source();
  TS_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  ModelConfig c;
  if (arch == "llama") {
    c.arch = Architecture::kLlama;
  } else if (arch == "gpt2") {
    c.arch = Architecture::kGpt2;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unknown architecture \"", arch,
                                                   "\"; supported GGUF architectures: llama, gpt2"));
  }
  auto key = [&](const char* k) { return absl::StrCat(arch, ".", k); };
  auto req = [&](const char* k) -> absl::StatusOr<int64_t> {
    auto v = g.GetUint(key(k));
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": GGUF key ", key(k), ": ", v.status().message()));
    }
    return static_cast<int64_t>(*v);
  };
  TS_ASSIGN_OR_RETURN(c.hidden_size, req("embedding_length"));
  TS_ASSIGN_OR_RETURN(c.num_layers, req("block_count"));
  TS_ASSIGN_OR_RETURN(c.intermediate_size, req("feed_forward_length"));
  TS_ASSIGN_OR_RETURN(c.num_heads, req("attention.head_count"));
  TS_ASSIGN_OR_RETURN(c.max_position_embeddings, req("context_length"));
  c.num_kv_heads = c.num_heads;
  if (g.Has(key("attention.head_count_kv"))) {
    TS_ASSIGN_OR_RETURN(c.num_kv_heads, req("attention.head_count_kv"));
  }
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  if (c.arch == Architecture::kLlama) {
    if (g.Has(key("rope.dimension_count"))) {
      TS_ASSIGN_OR_RETURN(c.head_dim, req("rope.dimension_count"));
    }
    TS_ASSIGN_OR_RETURN(double eps, g.GetFloat(key("attention.layer_norm_rms_epsilon")));
    c.norm_eps = static_cast<float>(eps);
    if (g.Has(key("rope.freq_base"))) {
      TS_ASSIGN_OR_RETURN(double theta, g.GetFloat(key("rope.freq_base")));
      c.rope_theta = static_cast<float>(theta);
    }
    if (g.Has(key("rope.scaling.type"))) {
      TS_ASSIGN_OR_RETURN(std::string type, g.GetString(key("rope.scaling.type")));
      if (type != "none") {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": GGUF rope scaling type \"", type, "\" is not supported yet; supported: none"));
      }
    }
    c.tie_word_embeddings = g.Find("output.weight") == nullptr;
  } else {
    TS_ASSIGN_OR_RETURN(double eps, g.GetFloat(key("attention.layer_norm_epsilon")));
    c.norm_eps = static_cast<float>(eps);
    c.tie_word_embeddings = g.Find("output.weight") == nullptr;
  }
  // The vocabulary size comes from the embedding matrix, the one fact every file has.
  const TensorView* emb = g.Find("token_embd.weight");
  if (emb == nullptr || emb->shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": missing 2-D tensor token_embd.weight"));
  }
  c.vocab_size = emb->shape[0];
  if (g.Has("tokenizer.ggml.bos_token_id")) {
    TS_ASSIGN_OR_RETURN(uint64_t bos, g.GetUint("tokenizer.ggml.bos_token_id"));
    c.bos_token_id = static_cast<int32_t>(bos);
  }
  if (g.Has("tokenizer.ggml.eos_token_id")) {
    TS_ASSIGN_OR_RETURN(uint64_t eos, g.GetUint("tokenizer.ggml.eos_token_id"));
    c.eos_token_ids.push_back(static_cast<int32_t>(eos));
  }
  TS_RETURN_IF_ERROR(c.Validate(path));
  return c;
}

}  // namespace tierserve
