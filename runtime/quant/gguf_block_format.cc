#include "runtime/quant/gguf_block_format.h"

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/repacked_matmul.h"

namespace tierserve {

GgufBlockFormat::GgufBlockFormat(BlockWeight blocks)
    : WeightFormat(blocks.rows(), blocks.cols()), type_(blocks.type()) {
  if (cpu::CanRepack(type_, rows(), cols())) {
    packed_.resize(cpu::RepackedBytes(type_, rows(), cols()));
    cpu::RepackRows(type_, blocks.data(), blocks.row_bytes(), rows(), cols(), packed_.data());
  } else {
    blocks_ = std::move(blocks);
  }
}

Precision GgufBlockFormat::precision() const {
  switch (type_) {
    case DType::kQ8_0: return Precision::kQ8_0;
    case DType::kQ4_0: return Precision::kQ4_0;
    default: return Precision::kQ4_1;
  }
}

int64_t GgufBlockFormat::bytes() const {
  return packed_.empty() ? blocks_.bytes() : static_cast<int64_t>(packed_.size());
}

void GgufBlockFormat::ForwardRows(const float* x, const PreparedInput*, int64_t M, float* y,
                                  int64_t ldy, int64_t n0, int64_t n1) const {
  if (!packed_.empty()) {
    cpu::RepackedMatMulF32(type_, x, cols(), packed_.data(), y, ldy, M, cols(), n0, n1);
  } else {
    cpu::QuantMatMulF32(type_, x, cols(), blocks_.data(), blocks_.row_bytes(), y, ldy, M, cols(),
                        n0, n1);
  }
}

void GgufBlockFormat::Row(int64_t r, float* out) const {
  if (!packed_.empty()) {
    cpu::RepackedRowF32(type_, packed_.data(), cols(), r, out);
  } else {
    DequantizeRowF32(type_, blocks_.data() + r * blocks_.row_bytes(), out, cols());
  }
}

}  // namespace tierserve
