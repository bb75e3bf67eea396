// LLM.int8() weights (bitsandbytes' Linear8bitLt): int8 rows with their
// absmax scales (CB, SCB), multiplied against activations quantized to int8
// per token, the outlier activations (|x| >= threshold) in fp32
// (kernels/cpu/int8_matmul.h states the math).
#ifndef TIERSERVE_RUNTIME_QUANT_INT8_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_INT8_FORMAT_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/int8_matmul.h"
#include "runtime/base/aligned_bytes.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class Int8Format final : public WeightFormat {
 public:
  // Quantizes w [rows, cols] as bitsandbytes' Linear8bitLt does: its fp16
  // cast, by int8_vectorwise_quant. Activations too are quantized from their
  // fp16 cast (outliers are decided on it), while the outlier part multiplies
  // the fp32 values, as bitsandbytes' MatMul8bitLt does on the CPU.
  Int8Format(const float* w, int64_t rows, int64_t cols, float threshold);
  // Bytes of the image of a [rows, cols] weight, without making it.
  static int64_t ImageBytes(int64_t rows, int64_t cols);

  Precision precision() const override { return Precision::kInt8; }
  std::unique_ptr<PreparedInput> Prepare(const float* x, int64_t M, ThreadPool* pool) const override;
  bool SharesPreparedInput(const WeightFormat& other) const override;
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

  // The int8 rows [rows, cols] and their scales [rows] (bitsandbytes' CB, SCB).
  const int8_t* cb() const { return reinterpret_cast<const int8_t*>(image()); }
  const float* scb() const { return reinterpret_cast<const float*>(image() + scb_offset_); }

 private:
  // The image: cb int8 [rows, cols], scb fp32 [rows], row sums int32 [rows]
  // (Int8WeightAux), each 64-byte aligned.
  static ImageLayout MakeLayout(int64_t rows, int64_t cols, int64_t* scb_offset,
                                int64_t* row_sum_offset);
  void OnBind() override;
  void DropStorage() override { storage_ = AlignedBytes(); }

  float threshold_;
  int64_t scb_offset_;
  int64_t row_sum_offset_;
  AlignedBytes storage_;     // the image as made
  cpu::Int8WeightAux aux_;   // points into image()
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_INT8_FORMAT_H_
