#include "runtime/model/weight_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"
#include "runtime/base/mapped_file.h"
#include "runtime/format/safetensors.h"

namespace tierserve {

namespace {

bool IsDirectory(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string ShapeString(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

// llama.cpp stores, within each head of d rows, HF row i (< d/2) at row 2i
// and HF row i + d/2 at row 2i+1. Puts rows of `row_bytes` bytes back in HF
// order from `src` into `dst`.
absl::Status UnpermuteQkRows(const TensorView& t, const uint8_t* src, int64_t rows, int64_t heads,
                             int64_t row_bytes, uint8_t* dst) {
  if (rows % heads != 0 || (rows / heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(t.file, ": tensor ", t.name, " has ", rows,
                                                   " rows, not a whole number of ", heads,
                                                   " heads of even size"));
  }
  const int64_t d = rows / heads, half = d / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      std::memcpy(dst + (h * d + i) * row_bytes, src + (h * d + 2 * i) * row_bytes, row_bytes);
      std::memcpy(dst + (h * d + half + i) * row_bytes, src + (h * d + 2 * i + 1) * row_bytes, row_bytes);
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// HF <-> GGUF names of the llama tensors: whole names, then the parts of a
// per-layer name between "model.layers.N." / "blk.N." and the suffix.
constexpr std::pair<const char*, const char*> kLlamaTopNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
constexpr std::pair<const char*, const char*> kLlamaBlockNames[] = {
    {"self_attn.q_proj", "attn_q"},       {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},       {"self_attn.o_proj", "attn_output"},
    {"mlp.gate_proj", "ffn_gate"},        {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},        {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
};
constexpr const char* kParamSuffixes[] = {".weight", ".bias"};

// Maps "<from_prefix>N.<part><suffix>" to "<to_prefix>N.<part'><suffix>" through
// the block table (`hf_to_gguf` picks the direction); "" when it does not apply.
std::string MapBlockName(const std::string& name, absl::string_view from_prefix,
                         absl::string_view to_prefix, bool hf_to_gguf) {
  if (!absl::StartsWith(name, from_prefix)) return "";
  const size_t dot = name.find('.', from_prefix.size());
  if (dot == std::string::npos) return "";
  const std::string layer = name.substr(from_prefix.size(), dot - from_prefix.size());
  const std::string rest = name.substr(dot + 1);  // e.g. "self_attn.q_proj.weight"
  for (const auto& [h, g] : kLlamaBlockNames) {
    const char* from = hf_to_gguf ? h : g;
    const char* to = hf_to_gguf ? g : h;
    for (const char* suffix : kParamSuffixes) {
      if (rest == absl::StrCat(from, suffix)) return absl::StrCat(to_prefix, layer, ".", to, suffix);
    }
  }
  return "";
}

}  // namespace

std::string GgufLlamaName(const std::string& hf) {
  for (const auto& [h, g] : kLlamaTopNames)
    if (hf == h) return g;
  return MapBlockName(hf, "model.layers.", "blk.", /*hf_to_gguf=*/true);
}

std::string HfLlamaName(const std::string& gguf) {
  for (const auto& [h, g] : kLlamaTopNames)
    if (gguf == g) return h;
  return MapBlockName(gguf, "blk.", "model.layers.", /*hf_to_gguf=*/false);
}

std::vector<std::string> WeightSource::HfTensorNames() const {
  std::vector<std::string> names = store_->Names();
  for (std::string& n : names) {
    if (gguf_ != nullptr) {
      // Tensors with no HF counterpart (e.g. rope_freqs.weight) keep their GGUF name.
      if (std::string hf = HfLlamaName(n); !hf.empty()) n = std::move(hf);
    } else if (config_.arch == Architecture::kGpt2 && !absl::StartsWith(n, "transformer.") &&
               !absl::StartsWith(n, "lm_head.")) {
      // The original GPT-2 checkpoints drop the "transformer." of the module path.
      n = absl::StrCat("transformer.", n);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> WeightSource::HfModulesWithoutTensors() const {
  std::vector<std::string> modules;
  if (config_.tie_word_embeddings && !Has("lm_head.weight")) modules.push_back("lm_head");
  // The modules transformers' implementations hold without parameters.
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    if (config_.arch == Architecture::kGpt2) {
      const std::string p = absl::StrCat("transformer.h.", l, ".");
      for (const char* m : {"attn.attn_dropout", "attn.resid_dropout", "mlp.act", "mlp.dropout"}) {
        modules.push_back(p + m);
      }
    } else {
      modules.push_back(absl::StrCat("model.layers.", l, ".mlp.act_fn"));
    }
  }
  if (config_.arch == Architecture::kGpt2) {
    modules.push_back("transformer.drop");
  } else {
    modules.push_back("model.rotary_emb");
  }
  return modules;
}

absl::StatusOr<std::unique_ptr<WeightSource>> WeightSource::Open(const std::string& path) {
  std::unique_ptr<WeightSource> src(new WeightSource());
  src->path_ = path;
  if (IsDirectory(path)) {
    TS_ASSIGN_OR_RETURN(src->config_, ReadHfConfig(path + "/config.json"));
    TS_ASSIGN_OR_RETURN(src->store_, OpenSafetensors(path));
  } else if (absl::EndsWith(path, ".gguf")) {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> g, GgufFile::Open(path));
    TS_ASSIGN_OR_RETURN(src->config_, ReadGgufConfig(*g));
    if (src->config_.arch != Architecture::kLlama) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": GGUF models of architecture ", ArchitectureName(src->config_.arch),
          " are not supported yet; supported in GGUF: llama"));
    }
    src->gguf_ = g.get();
    src->store_ = std::move(g);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a model; expected a .gguf file or a folder with config.json and safetensors"));
  }
  return src;
}

const TensorView* WeightSource::Resolve(const std::string& hf_name, int64_t* permute_heads) const {
  *permute_heads = 0;
  if (gguf_ == nullptr) {
    if (const TensorView* t = store_->Find(hf_name)) return t;
    // GPT-2 checkpoints saved from GPT2Model have no "transformer." prefix.
    constexpr absl::string_view kGpt2Prefix = "transformer.";
    if (absl::StartsWith(hf_name, kGpt2Prefix)) return store_->Find(hf_name.substr(kGpt2Prefix.size()));
    return nullptr;
  }
  const std::string g = GgufLlamaName(hf_name);
  if (g.empty()) return nullptr;
  if (absl::StrContains(g, ".attn_q.")) *permute_heads = config_.num_heads;
  if (absl::StrContains(g, ".attn_k.")) *permute_heads = config_.num_kv_heads;
  return gguf_->Find(g);
}

void WeightSource::ReleaseStored(const std::string& hf_name) const {
  int64_t unused;
  if (const TensorView* t = Resolve(hf_name, &unused)) ReleaseMappedPages(t->data, t->nbytes);
}

bool WeightSource::Has(const std::string& hf_name) const {
  int64_t unused;
  return Resolve(hf_name, &unused) != nullptr;
}

absl::StatusOr<const TensorView*> WeightSource::Stored(const std::string& hf_name,
                                                      const std::vector<int64_t>& shape,
                                                      bool transpose, int64_t* permute_heads) const {
  int64_t unused = 0;
  if (permute_heads == nullptr) permute_heads = &unused;
  const TensorView* t = Resolve(hf_name, permute_heads);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": missing tensor ", hf_name,
                                            gguf_ ? absl::StrCat(" (GGUF name ", GgufLlamaName(hf_name), ")") : ""));
  }
  std::vector<int64_t> stored = shape;
  if (transpose) {
    if (shape.size() != 2) return absl::InternalError("transpose needs a 2-D tensor");
    stored = {shape[1], shape[0]};
  }
  if (t->shape != stored) {
    return absl::InvalidArgumentError(absl::StrCat(t->file, ": tensor ", t->name, " has shape ",
                                                   ShapeString(t->shape), ", expected ",
                                                   ShapeString(stored)));
  }
  return t;
}

absl::StatusOr<F32Weight> WeightSource::Load(const std::string& hf_name,
                                             const std::vector<int64_t>& shape,
                                             bool transpose) const {
  int64_t permute_heads = 0;
  TS_ASSIGN_OR_RETURN(const TensorView* t, Stored(hf_name, shape, transpose, &permute_heads));
  const std::vector<int64_t>& stored = t->shape;
  F32Weight w;
  w.shape_ = shape;
  const int64_t n = t->NumElements();
  const bool in_place = t->dtype == DType::kF32 && !transpose && permute_heads == 0 &&
                        reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0;
  if (in_place) {
    w.data_ = reinterpret_cast<const float*>(t->data);
    return w;
  }
  std::vector<float> buf(static_cast<size_t>(n));
  TS_RETURN_IF_ERROR(ReadAsF32(*t, buf.data(), n));
  if (transpose) {
    const int64_t rows = stored[0], cols = stored[1];
    w.owned_.resize(buf.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) w.owned_[c * rows + r] = buf[r * cols + c];
  } else if (permute_heads > 0) {
    const int64_t cols = shape.size() > 1 ? shape[1] : 1;
    w.owned_.resize(buf.size());
    TS_RETURN_IF_ERROR(UnpermuteQkRows(*t, reinterpret_cast<const uint8_t*>(buf.data()), shape[0],
                                       permute_heads, cols * static_cast<int64_t>(sizeof(float)),
                                       reinterpret_cast<uint8_t*>(w.owned_.data())));
  } else {
    w.owned_ = std::move(buf);
  }
  w.data_ = w.owned_.data();
  return w;
}

absl::StatusOr<std::optional<BlockWeight>> WeightSource::LoadBlocks(const std::string& hf_name,
                                                                   int64_t rows, int64_t cols) const {
  int64_t permute_heads = 0;
  const TensorView* t = Resolve(hf_name, &permute_heads);
  if (t == nullptr || BlockElems(t->dtype) <= 1) return std::optional<BlockWeight>();
  if (t->shape != std::vector<int64_t>{rows, cols}) {
    return absl::InvalidArgumentError(absl::StrCat(t->file, ": tensor ", t->name, " has shape ",
                                                   ShapeString(t->shape), ", expected ",
                                                   ShapeString({rows, cols})));
  }
  BlockWeight w;
  w.type_ = t->dtype;
  w.rows_ = rows;
  w.cols_ = cols;
  w.row_bytes_ = cols / BlockElems(t->dtype) * BlockBytes(t->dtype);
  if (permute_heads == 0) {
    w.data_ = t->data;
    return std::optional<BlockWeight>(std::move(w));
  }
  // Rows are whole blocks, so llama.cpp's Q/K row order is undone on bytes.
  w.owned_.resize(static_cast<size_t>(rows * w.row_bytes_));
  TS_RETURN_IF_ERROR(UnpermuteQkRows(*t, t->data, rows, permute_heads, w.row_bytes_, w.owned_.data()));
  w.data_ = w.owned_.data();
  return std::optional<BlockWeight>(std::move(w));
}

}  // namespace tierserve
