// The blueprint of a model: architecture and dimensions, read from a HF
// `config.json` or from GGUF metadata. Plain data.
#ifndef TIERSERVE_RUNTIME_MODEL_MODEL_CONFIG_H_
#define TIERSERVE_RUNTIME_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tierserve {

class GgufFile;

enum class Architecture {
  kLlama,  // LlamaForCausalLM (Llama 2/3, SmolLM2, TinyLlama, Mistral w/o sliding window)
  kGpt2,   // GPT2LMHeadModel
};

const char* ArchitectureName(Architecture a);

struct RopeScaling {
  std::string type;  // "" (none), "llama3", "linear"
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  float norm_eps = 1e-5f;     // rms_norm_eps (llama) or layer_norm_epsilon (gpt2)
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // llama: q/k/v/o carry biases
  bool mlp_bias = false;        // llama: gate/up/down carry biases
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;

  // Checks the dimensions are positive and consistent (heads divide, ...).
  absl::Status Validate(const std::string& source) const;
};

// Reads `<folder>/config.json`. Errors name the file and the field.
absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& config_json_path);
// The same from the text of a config.json; `source` names it in messages.
absl::StatusOr<ModelConfig> ParseHfConfig(std::string_view json_text, const std::string& source);

// Reads the `general.architecture` and `<arch>.*` keys of a GGUF file.
absl::StatusOr<ModelConfig> ReadGgufConfig(const GgufFile& gguf);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_MODEL_CONFIG_H_
