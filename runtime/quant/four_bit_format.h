// bitsandbytes 4-bit weights (Linear4bit): NF4 or FP4 codes packed two per
// byte, an absmax per block of 64, optionally double-quantized; multiplied
// by a fused kernel that decodes the packed bytes in registers
// (kernels/cpu/fourbit_matmul.h states the math and layout).
#ifndef TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/fourbit_matmul.h"
#include "runtime/placement/quantization_config.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class FourBitFormat final : public WeightFormat {
 public:
  static constexpr int64_t kBlockSize = 64;  // transformers' fixed blocksize

  // Quantizes w [rows, cols] as bitsandbytes' quantize_4bit does.
  FourBitFormat(const float* w, int64_t rows, int64_t cols, Precision precision,
                bool double_quant, ComputeDType compute);

  Precision precision() const override { return precision_; }
  int64_t bytes() const override;
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

  // The view the kernels read.
  const cpu::FourBitWeight& view() const { return view_; }

 private:
  Precision precision_;
  cpu::ComputeDType compute_;
  std::vector<uint8_t> packed_;   // [(rows*cols + 1) / 2]
  std::vector<float> absmax_;     // [nblocks], without double quant
  std::vector<uint8_t> qabsmax_;  // [nblocks], with double quant
  std::vector<float> absmax2_;    // [ceil(nblocks / 256)], with double quant
  cpu::FourBitWeight view_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_
