#include "runtime/quant/f32_format.h"

#include <cstring>

#include "kernels/cpu/matmul.h"

namespace tierserve {

F32Format::F32Format(F32Weight w) : WeightFormat(w.shape()[0], w.shape()[1]), w_(std::move(w)) {
  SetImage(reinterpret_cast<const uint8_t*>(w_.data()),
           static_cast<int64_t>(sizeof(float)) * w_.size());
}

void F32Format::ForwardRows(const float* x, const PreparedInput*, int64_t M, float* y, int64_t ldy,
                            int64_t n0, int64_t n1) const {
  cpu::MatMulF32(x, cols(), w(), y, ldy, M, cols(), n0, n1);
}

void F32Format::Row(int64_t r, float* out) const {
  std::memcpy(out, w() + r * cols(), sizeof(float) * cols());
}

}  // namespace tierserve
