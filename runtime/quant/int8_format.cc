#include "runtime/quant/int8_format.h"

#include "kernels/common/half.h"
#include "kernels/cpu/bnb_quantize.h"

namespace tierserve {
namespace {

struct Int8Input final : PreparedInput {
  cpu::Int8Activations a;
};

float RoundToF16(float v) { return F16ToF32(F32ToF16(v)); }

}  // namespace

Int8Format::Int8Format(const float* w, int64_t rows, int64_t cols, float threshold)
    : WeightFormat(rows, cols), threshold_(threshold), cb_(rows * cols), scb_(rows) {
  // bitsandbytes quantizes the fp16 cast of the weight (Int8Params), so the
  // bytes equal its own for a model loaded with load_in_8bit.
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) row[c] = RoundToF16(w[r * cols + c]);
    cpu::QuantizeInt8Rows(row.data(), 1, cols, cb_.data() + r * cols, scb_.data() + r);
  }
  aux_ = cpu::ComputeInt8WeightAux(cb_.data(), rows, cols);
}

int64_t Int8Format::bytes() const {
  return static_cast<int64_t>(cb_.size() + sizeof(float) * scb_.size() +
                              sizeof(int32_t) * aux_.row_sum.size());
}

std::unique_ptr<PreparedInput> Int8Format::Prepare(const float* x, int64_t M) const {
  // As bitsandbytes: the fp16 cast of x decides the outliers and is
  // quantized; the outliers themselves are multiplied as given (fp32).
  const int64_t K = cols();
  std::vector<float> x16(M * K);
  for (int64_t i = 0; i < M * K; ++i) x16[i] = RoundToF16(x[i]);
  auto in = std::make_unique<Int8Input>();
  cpu::Int8Activations& a = in->a;
  a.Resize(M, K);
  cpu::QuantizeActivationsInt8(x16.data(), M, K, threshold_, &a);
  for (int64_t t = 0; t < M; ++t) {
    for (int64_t i = a.outlier_begin[t]; i < a.outlier_begin[t + 1]; ++i) {
      a.outlier_x[i] = x[t * K + a.outlier_col[i]];
    }
  }
  return in;
}

void Int8Format::ForwardRows(const float*, const PreparedInput* prepared, int64_t M, float* y,
                             int64_t ldy, int64_t n0, int64_t n1) const {
  const auto& a = static_cast<const Int8Input*>(prepared)->a;
  cpu::Int8MatMul(a, cb_.data(), scb_.data(), aux_, y, ldy, M, cols(), n0, n1);
}

void Int8Format::Row(int64_t r, float* out) const {
  cpu::DequantizeInt8Rows(cb_.data() + r * cols(), scb_.data() + r, 1, cols(), out);
}

}  // namespace tierserve
