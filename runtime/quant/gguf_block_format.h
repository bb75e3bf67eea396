// GGUF block weights (Q8_0, Q4_0, Q4_1) served as stored. With fp32
// activations they are decoded in registers by the block kernels, repacked 16
// rows at a time (kernels/cpu/repacked_matmul.h) when the shape allows,
// otherwise kept in the file's row layout. With int8 activations (when the
// shape allows, else as with fp32) Prepare quantizes x per 32 columns and the
// integer kernel (kernels/cpu/q8_dot_matmul.h) reads its own repacked layout.
#ifndef TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_

#include <cstdint>
#include <vector>

#include "runtime/base/aligned_bytes.h"
#include "runtime/format/weight_views.h"
#include "runtime/placement/precision.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class GgufBlockFormat final : public WeightFormat {
 public:
  explicit GgufBlockFormat(BlockWeight blocks,
                           ActivationPrecision activations = ActivationPrecision::kFp32);
  // Bytes of the image of a [rows, cols] weight of block type `type` (one
  // cpu::QuantMatMulSupports serves), without making it.
  static int64_t ImageBytes(DType type, int64_t rows, int64_t cols);
  // The precision a weight of block type `type` is served in.
  static Precision PrecisionOf(DType type);

  Precision precision() const override;
  std::unique_ptr<PreparedInput> Prepare(const float* x, int64_t M, ThreadPool* pool) const override;
  bool SharesPreparedInput(const WeightFormat& other) const override;
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

 private:
  void DropStorage() override;

  enum class Layout {
    kRows,      // the file's rows
    kRepacked,  // cpu::RepackRows (fp32 activations)
    kQ8Dot,     // cpu::RepackQ8Dot (int8 activations)
  };

  DType type_;
  Layout layout_;
  int64_t row_bytes_;    // of the file's rows
  BlockWeight blocks_;   // the file's rows as loaded; released once repacked
  AlignedBytes packed_;  // the repacked rows as made
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
