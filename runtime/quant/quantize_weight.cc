#include "runtime/quant/quantize_weight.h"

#include "absl/strings/str_cat.h"
#include "runtime/quant/f32_format.h"
#include "runtime/quant/four_bit_format.h"
#include "runtime/quant/int8_format.h"

namespace tierserve {

bool CanQuantizeAtLoad(Precision precision) {
  return precision == Precision::kFp32 || precision == Precision::kInt8 ||
         precision == Precision::kNf4 || precision == Precision::kFp4;
}

absl::StatusOr<std::unique_ptr<WeightFormat>> QuantizeWeight(Precision precision,
                                                             const F32Weight& w,
                                                             const QuantizeOptions& options) {
  if (w.shape().size() != 2) return absl::InvalidArgumentError("only matrices are quantized");
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  switch (precision) {
    case Precision::kInt8:
      return std::make_unique<Int8Format>(w.data(), rows, cols, options.int8_threshold);
    case Precision::kNf4:
    case Precision::kFp4:
      return std::make_unique<FourBitFormat>(w.data(), rows, cols, precision, options.double_quant,
                                             options.compute);
    default:
      break;
  }
  return absl::UnimplementedError(
      absl::StrCat("precision ", PrecisionName(precision), " cannot be made at load yet"));
}

int64_t QuantizedImageBytes(Precision precision, int64_t rows, int64_t cols,
                            const QuantizeOptions& options) {
  switch (precision) {
    case Precision::kInt8:
      return Int8Format::ImageBytes(rows, cols);
    case Precision::kNf4:
    case Precision::kFp4:
      return FourBitFormat::ImageBytes(rows, cols, options.double_quant);
    default:
      return F32Format::ImageBytes(rows, cols);
  }
}

}  // namespace tierserve
