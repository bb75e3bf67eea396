#include "runtime/placement/quantization_config.h"

namespace tierserve {

const char* ComputeDTypeName(ComputeDType t) {
  switch (t) {
    case ComputeDType::kFp32: return "fp32";
    case ComputeDType::kFp16: return "fp16";
    case ComputeDType::kBf16: return "bf16";
  }
  return "?";
}

bool IsModulePrefix(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return true;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.';
}

std::vector<std::string> QuantizationConfig::SkipModules() const {
  if (llm_int8_skip_modules.has_value()) return *llm_int8_skip_modules;
  return {"lm_head"};
}

std::optional<Precision> QuantizationConfig::LinearPrecision(std::string_view module_path) const {
  if (!enabled()) return std::nullopt;
  for (const std::string& skip : SkipModules()) {
    if (IsModulePrefix(skip, module_path)) return std::nullopt;
  }
  if (load_in_8bit) return Precision::kInt8;
  return bnb_4bit_quant_type == QuantType::kNf4 ? Precision::kNf4 : Precision::kFp4;
}

}  // namespace tierserve
