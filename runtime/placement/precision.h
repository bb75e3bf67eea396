// The storage format of a module's weights (DESIGN.md, "precision").
#ifndef TIERSERVE_RUNTIME_PLACEMENT_PRECISION_H_
#define TIERSERVE_RUNTIME_PLACEMENT_PRECISION_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace tierserve {

enum class Precision {
  kFp32,
  kFp16,
  kBf16,
  kInt8,
  kNf4,
  kFp4,
  kInt8Wo,
  kInt4Wo,
  kQ8_0,
  kQ4_0,
  kQ4_1
};

const char* PrecisionName(Precision p);

// The precision of the activations a block weight (Q4_0, Q4_1, Q8_0 as
// stored) multiplies: fp32 (exact fp32 math on the dequantized weights) or
// int8 (quantized per 32 columns, integer dot products, as llama.cpp does).
// Model-wide (`activation_precision`).
enum class ActivationPrecision { kFp32, kInt8 };
const char* ActivationPrecisionName(ActivationPrecision p);
std::optional<ActivationPrecision> ParseActivationPrecision(absl::string_view name);
std::optional<Precision> ParsePrecision(absl::string_view name);
// Every precision name, in declaration order: "fp32, fp16, ...".
std::string PrecisionNames();

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_PLACEMENT_PRECISION_H_
