// bitsandbytes 4-bit weights (Linear4bit): NF4 or FP4 codes packed two per
// byte, an absmax per block of 64, optionally double-quantized; multiplied
// by a fused kernel that decodes the packed bytes in registers
// (kernels/cpu/fourbit_matmul.h states the math and layout).
#ifndef TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/fourbit_matmul.h"
#include "runtime/base/aligned_bytes.h"
#include "runtime/placement/quantization_config.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class FourBitFormat final : public WeightFormat {
 public:
  static constexpr int64_t kBlockSize = 64;  // transformers' fixed blocksize

  // Quantizes w [rows, cols] as bitsandbytes' quantize_4bit does.
  FourBitFormat(const float* w, int64_t rows, int64_t cols, Precision precision,
                bool double_quant, ComputeDType compute);
  // Bytes of the image of a [rows, cols] weight, without making it.
  static int64_t ImageBytes(int64_t rows, int64_t cols, bool double_quant) {
    return MakeLayout(rows * cols, double_quant).bytes;
  }

  Precision precision() const override { return precision_; }
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

  // The view the kernels read.
  const cpu::FourBitWeight& view() const { return view_; }

 private:
  // The image, each array 64-byte aligned:
  //   packed   uint8 [(rows*cols + 1) / 2]
  //   absmax   fp32 [nblocks]                  without double quant, or
  //   qabsmax  uint8 [nblocks], absmax2 fp32 [ceil(nblocks / 256)],
  //   offset   fp32 [1]                        with double quant
  struct Layout {
    int64_t packed = 0, absmax = -1, qabsmax = -1, absmax2 = -1, offset = -1, bytes = 0;
  };
  static Layout MakeLayout(int64_t n, bool double_quant);
  void OnBind() override;
  void DropStorage() override { storage_ = AlignedBytes(); }

  Precision precision_;
  cpu::ComputeDType compute_;
  Layout layout_;
  AlignedBytes storage_;  // the image as made
  cpu::FourBitWeight view_;  // pointers into image()
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_FOUR_BIT_FORMAT_H_
