#include "runtime/quant/int8_format.h"

#include <immintrin.h>

#include "kernels/common/half.h"
#include "kernels/cpu/bnb_quantize.h"

namespace tierserve {
namespace {

struct Int8Input final : PreparedInput {
  cpu::Int8Activations a;
};

// out[i] = in[i] rounded to fp16 (to nearest, ties to even) and back. F16C
// converts 8 at a time with the same IEEE rounding as the scalar F32ToF16.
void RoundToF16(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) out[i] = F16ToF32(F32ToF16(in[i]));
}

}  // namespace

ImageLayout Int8Format::MakeLayout(int64_t rows, int64_t cols, int64_t* scb_offset,
                                   int64_t* row_sum_offset) {
  ImageLayout layout;
  layout.Add(rows * cols);
  *scb_offset = layout.Add(static_cast<int64_t>(sizeof(float)) * rows);
  *row_sum_offset = layout.Add(static_cast<int64_t>(sizeof(int32_t)) * rows);
  return layout;
}

int64_t Int8Format::ImageBytes(int64_t rows, int64_t cols) {
  int64_t scb, row_sum;
  return MakeLayout(rows, cols, &scb, &row_sum).size();
}

Int8Format::Int8Format(const float* w, int64_t rows, int64_t cols, float threshold)
    : WeightFormat(rows, cols), threshold_(threshold) {
  storage_ = AlignedBytes(MakeLayout(rows, cols, &scb_offset_, &row_sum_offset_).size());
  int8_t* cb = reinterpret_cast<int8_t*>(storage_.data());
  float* scb = reinterpret_cast<float*>(storage_.data() + scb_offset_);
  // bitsandbytes quantizes the fp16 cast of the weight (Int8Params), so the
  // bytes equal its own for a model loaded with load_in_8bit.
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    RoundToF16(w + r * cols, row.data(), cols);
    cpu::QuantizeInt8Rows(row.data(), 1, cols, cb + r * cols, scb + r);
  }
  cpu::Int8RowSums(cb, rows, cols, reinterpret_cast<int32_t*>(storage_.data() + row_sum_offset_));
  SetImage(storage_.data(), storage_.size());
  OnBind();
}

void Int8Format::OnBind() {
  aux_.row_sum = reinterpret_cast<const int32_t*>(image() + row_sum_offset_);
}

bool Int8Format::SharesPreparedInput(const WeightFormat& other) const {
  const auto* o = dynamic_cast<const Int8Format*>(&other);
  return o != nullptr && cols() == o->cols() && threshold_ == o->threshold_;
}

std::unique_ptr<PreparedInput> Int8Format::Prepare(const float* x, int64_t M, ThreadPool* /*pool*/) const {
  // As bitsandbytes: the fp16 cast of x decides the outliers and is
  // quantized; the outliers themselves are multiplied as given (fp32).
  const int64_t K = cols();
  std::vector<float> x16(M * K);
  RoundToF16(x, x16.data(), M * K);
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
  cpu::Int8MatMul(a, cb(), scb(), aux_, y, ldy, M, cols(), n0, n1);
}

void Int8Format::Row(int64_t r, float* out) const {
  cpu::DequantizeInt8Rows(cb() + r * cols(), scb() + r, 1, cols(), out);
}

}  // namespace tierserve
