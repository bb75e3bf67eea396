// bitsandbytes-style quantization of a model's linear layers, field for field
// transformers' BitsAndBytesConfig with its defaults, and the precision it
// gives each linear module.
//
// Only linear layers are quantized, as bitsandbytes replaces only nn.Linear
// (and GPT-2's Conv1D): embeddings, norms and biases keep their precision.
//
// Value type.
#ifndef TIERSERVE_RUNTIME_PLACEMENT_QUANTIZATION_CONFIG_H_
#define TIERSERVE_RUNTIME_PLACEMENT_QUANTIZATION_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/placement/precision.h"

namespace tierserve {

// The precision of the 4-bit matmul (and of bitsandbytes' int8 outlier part).
enum class ComputeDType { kFp32, kFp16, kBf16 };
const char* ComputeDTypeName(ComputeDType t);

struct QuantizationConfig {
  enum class QuantType { kNf4, kFp4 };

  bool load_in_8bit = false;
  bool load_in_4bit = false;
  // |x| >= threshold marks an activation as an outlier (int8); 0 disables
  // the outlier split.
  double llm_int8_threshold = 6.0;
  // Module-path prefixes kept unquantized. Unset: the output head
  // (`lm_head`), as transformers keeps it.
  std::optional<std::vector<std::string>> llm_int8_skip_modules;
  // Modules resting off the execution device stay fp32. With the cpu as the
  // execution device nothing is offloaded yet, so it changes nothing today.
  bool llm_int8_enable_fp32_cpu_offload = false;
  // Training-time setting (bitsandbytes keeps an fp16 master copy and
  // re-quantizes it each forward); for inference the int8 numbers are the
  // same, so the weights are stored int8 either way.
  bool llm_int8_has_fp16_weight = false;
  QuantType bnb_4bit_quant_type = QuantType::kFp4;
  bool bnb_4bit_use_double_quant = false;
  ComputeDType bnb_4bit_compute_dtype = ComputeDType::kFp32;
  // The dtype bitsandbytes views the packed bytes as (uint8, int8, fp16,
  // bf16, fp32): a reinterpretation of the same bytes, which changes
  // nothing here.
  std::string bnb_4bit_quant_storage = "uint8";

  bool enabled() const { return load_in_8bit || load_in_4bit; }

  // The skip list in force: llm_int8_skip_modules, or {"lm_head"} when unset.
  std::vector<std::string> SkipModules() const;

  // The precision the linear module `module_path` (no `.weight`) is
  // quantized to, or std::nullopt when this config leaves it as stored.
  std::optional<Precision> LinearPrecision(std::string_view module_path) const;
};

// True when `prefix` is `path` or a prefix of it ending at a `.` boundary
// ("" matches everything).
bool IsModulePrefix(std::string_view prefix, std::string_view path);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_PLACEMENT_QUANTIZATION_CONFIG_H_
