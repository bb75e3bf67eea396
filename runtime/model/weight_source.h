// Opens a model (a GGUF file or a HF folder) and hands out its tensors by HF
// module path as fp32, whatever the file's names, layout and element type:
// GGUF names are translated (`blk.3.attn_q.weight` is served as
// `model.layers.3.self_attn.q_proj.weight`) and llama.cpp's Q/K row
// permutation is undone, so one device map addresses both formats.
//
// Thread-safety: immutable after Open(); safe to share.
#ifndef TIERSERVE_RUNTIME_MODEL_WEIGHT_SOURCE_H_
#define TIERSERVE_RUNTIME_MODEL_WEIGHT_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/format/weight_store.h"
#include "runtime/format/weight_views.h"
#include "runtime/model/model_config.h"

namespace tierserve {

class GgufFile;

class WeightSource {
 public:
  // `path` is a `.gguf` file or a folder with config.json + safetensors.
  static absl::StatusOr<std::unique_ptr<WeightSource>> Open(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  // The GGUF file, or nullptr for a HF folder.
  const GgufFile* gguf() const { return gguf_; }

  bool Has(const std::string& hf_name) const;
  // Every tensor as stored, under the file's own names.
  const WeightStore& store() const { return *store_; }

  // The HF module-path name of every tensor in the files, sorted: what a
  // device map must cover. GGUF names are translated back; tensors with no HF
  // counterpart keep their stored name.
  std::vector<std::string> HfTensorNames() const;
  // Module paths a device map may name though they hold no tensor of their
  // own, as accelerate's maps do: the tied output head (`lm_head`, whose
  // weight is the embedding's and rests where the embedding does) and the
  // architecture's parameterless modules (dropouts, activations, rotary
  // embeddings). Placing them places nothing.
  std::vector<std::string> HfModulesWithoutTensors() const;

  // The tensor `hf_name` as fp32 with exactly `shape` (PyTorch order).
  // `transpose` turns a stored [a, b] into [b, a] (GPT-2's Conv1D weights).
  // Errors name the file, the tensor and both shapes.
  absl::StatusOr<F32Weight> Load(const std::string& hf_name, const std::vector<int64_t>& shape,
                                 bool transpose = false) const;

  // The stored tensor behind `hf_name`, checked to hold `shape` (PyTorch
  // order; `transpose` as in Load), without reading its bytes. Sets
  // `*permute_heads` (when given) to the head count whose Q/K row order is to
  // be undone, else 0.
  absl::StatusOr<const TensorView*> Stored(const std::string& hf_name,
                                           const std::vector<int64_t>& shape, bool transpose = false,
                                           int64_t* permute_heads = nullptr) const;

  // The [rows, cols] matrix `hf_name` as its stored blocks (a GGUF block
  // type, as the kernel table's multiplies_stored names them); std::nullopt
  // when it is not stored in blocks (use Load then).
  absl::StatusOr<std::optional<BlockWeight>> LoadBlocks(const std::string& hf_name, int64_t rows,
                                                        int64_t cols) const;

  // Releases the resident mapped pages of `hf_name`'s stored bytes (see
  // ReleaseMappedPages): for a tensor that was copied, converted or
  // quantized, whose stored bytes will not be read again.
  void ReleaseStored(const std::string& hf_name) const;

 private:
  WeightSource() = default;
  // The stored tensor behind `hf_name` and how to fix its rows, or nullptr.
  const TensorView* Resolve(const std::string& hf_name, int64_t* permute_heads) const;

  std::string path_;
  ModelConfig config_;
  std::unique_ptr<WeightStore> store_;
  const GgufFile* gguf_ = nullptr;  // store_ when it is a GGUF file
};

// The GGUF tensor name of a HF llama tensor name ("" when there is none).
std::string GgufLlamaName(const std::string& hf_name);
// The inverse: the HF name of a GGUF llama tensor name ("" when there is none).
std::string HfLlamaName(const std::string& gguf_name);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_WEIGHT_SOURCE_H_
