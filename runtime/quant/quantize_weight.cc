#include "runtime/quant/quantize_weight.h"

#include "absl/strings/str_cat.h"

namespace tierserve {

bool CanQuantizeAtLoad(Precision precision) {
  return precision == Precision::kFp32 || precision == Precision::kInt8 ||
         precision == Precision::kNf4 || precision == Precision::kFp4;
}

absl::StatusOr<std::unique_ptr<WeightFormat>> QuantizeWeight(Precision precision,
                                                             const F32Weight& /*w*/,
                                                             const QuantizeOptions& /*options*/) {
  return absl::UnimplementedError(
      absl::StrCat("precision ", PrecisionName(precision), " cannot be made at load yet"));
}

}  // namespace tierserve
