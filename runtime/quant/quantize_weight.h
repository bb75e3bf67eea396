// Makes the WeightFormat of a precision from an fp32 weight: the quantizers
// of LLM.int8 and NF4/FP4, run once at load.
#ifndef TIERSERVE_RUNTIME_QUANT_QUANTIZE_WEIGHT_H_
#define TIERSERVE_RUNTIME_QUANT_QUANTIZE_WEIGHT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/format/weight_views.h"
#include "runtime/placement/precision.h"
#include "runtime/placement/quantization_config.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

struct QuantizeOptions {
  float int8_threshold = 6.0f;  // LLM.int8 outlier threshold; 0: no split
  bool double_quant = false;    // 4-bit: quantize the absmax values again
  ComputeDType compute = ComputeDType::kFp32;  // 4-bit matmul precision
};

// True for the precisions QuantizeWeight makes: fp32, int8, nf4, fp4.
bool CanQuantizeAtLoad(Precision precision);

// `w` is [rows, cols]. Unimplemented for precisions that cannot be made
// from fp32 here (GGUF block types, fp16, bf16, weight-only).
absl::StatusOr<std::unique_ptr<WeightFormat>> QuantizeWeight(Precision precision,
                                                             const F32Weight& w,
                                                             const QuantizeOptions& options);

// Bytes of the image QuantizeWeight makes of a [rows, cols] weight in
// `precision` (fp32 too), without making it. REQUIRES: CanQuantizeAtLoad.
int64_t QuantizedImageBytes(Precision precision, int64_t rows, int64_t cols,
                            const QuantizeOptions& options);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_QUANTIZE_WEIGHT_H_
