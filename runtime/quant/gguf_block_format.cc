#include "runtime/quant/gguf_block_format.h"

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/repacked_matmul.h"

namespace tierserve {

GgufBlockFormat::GgufBlockFormat(BlockWeight blocks)
    : WeightFormat(blocks.rows(), blocks.cols()),
      type_(blocks.type()),
      repacked_(cpu::CanRepack(type_, rows(), cols())),
      row_bytes_(blocks.row_bytes()) {
  if (repacked_) {
    packed_ = AlignedBytes(cpu::RepackedBytes(type_, rows(), cols()));
    cpu::RepackRows(type_, blocks.data(), blocks.row_bytes(), rows(), cols(), packed_.data());
    SetImage(packed_.data(), packed_.size());
  } else {
    blocks_ = std::move(blocks);
    SetImage(blocks_.data(), blocks_.bytes());
  }
}

int64_t GgufBlockFormat::ImageBytes(DType type, int64_t rows, int64_t cols) {
  if (cpu::CanRepack(type, rows, cols)) return cpu::RepackedBytes(type, rows, cols);
  return rows * (cols / BlockElems(type) * BlockBytes(type));
}

void GgufBlockFormat::DropStorage() {
  blocks_ = BlockWeight();
  packed_ = AlignedBytes();
}

Precision GgufBlockFormat::precision() const { return PrecisionOf(type_); }

Precision GgufBlockFormat::PrecisionOf(DType type) {
  switch (type) {
    case DType::kQ8_0: return Precision::kQ8_0;
    case DType::kQ4_0: return Precision::kQ4_0;
    default: return Precision::kQ4_1;
  }
}

void GgufBlockFormat::ForwardRows(const float* x, const PreparedInput*, int64_t M, float* y,
                                  int64_t ldy, int64_t n0, int64_t n1) const {
  if (repacked_) {
    cpu::RepackedMatMulF32(type_, x, cols(), image(), y, ldy, M, cols(), n0, n1);
  } else {
    cpu::QuantMatMulF32(type_, x, cols(), image(), row_bytes_, y, ldy, M, cols(), n0, n1);
  }
}

void GgufBlockFormat::Row(int64_t r, float* out) const {
  if (repacked_) {
    cpu::RepackedRowF32(type_, image(), cols(), r, out);
  } else {
    DequantizeRowF32(type_, image() + r * row_bytes_, out, cols());
  }
}

}  // namespace tierserve
