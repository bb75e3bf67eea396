// GGUF block weights (Q8_0, Q4_0, Q4_1) served as stored: decoded in
// registers by the block kernels while activations stay fp32. Repacked 16
// rows at a time (kernels/cpu/repacked_matmul.h) when the shape allows;
// otherwise kept in the file's row layout.
#ifndef TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_

#include <cstdint>
#include <vector>

#include "runtime/base/aligned_bytes.h"
#include "runtime/format/weight_views.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class GgufBlockFormat final : public WeightFormat {
 public:
  explicit GgufBlockFormat(BlockWeight blocks);
  // Bytes of the image of a [rows, cols] weight of block type `type` (one
  // cpu::QuantMatMulSupports serves), without making it.
  static int64_t ImageBytes(DType type, int64_t rows, int64_t cols);
  // The precision a weight of block type `type` is served in.
  static Precision PrecisionOf(DType type);

  Precision precision() const override;
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

 private:
  void DropStorage() override;

  DType type_;
  bool repacked_;        // the image is RepackRows' layout, else the file's rows
  int64_t row_bytes_;    // of the file's rows
  BlockWeight blocks_;   // the file's rows as loaded; released once repacked
  AlignedBytes packed_;  // the repacked rows as made
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
