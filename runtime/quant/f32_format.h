// fp32 weights, [rows, cols] row-major: made as a view into the mapped model
// file when the stored bytes are already that, else as an owned converted
// copy; the image is the matrix itself (the loader then binds it to a buffer
// of the device it rests on).
#ifndef TIERSERVE_RUNTIME_QUANT_F32_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_F32_FORMAT_H_

#include "runtime/format/weight_views.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class F32Format final : public WeightFormat {
 public:
  // REQUIRES: w.shape() == {rows, cols}.
  explicit F32Format(F32Weight w);
  // Bytes of the image of a [rows, cols] weight.
  static int64_t ImageBytes(int64_t rows, int64_t cols) {
    return rows * cols * static_cast<int64_t>(sizeof(float));
  }

  Precision precision() const override { return Precision::kFp32; }
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;

 private:
  const float* w() const { return reinterpret_cast<const float*>(image()); }
  void DropStorage() override { w_ = F32Weight(); }

  F32Weight w_;  // the storage as made; empty once bound elsewhere
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_F32_FORMAT_H_
