#include "runtime/quant/gguf_block_format.h"

#include "runtime/base/thread_pool.h"

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/q8_dot_matmul.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/repacked_matmul.h"

namespace tierserve {
namespace {

// x [M, cols] quantized per 32 columns, for the int8 kernel.
struct Q8Input final : PreparedInput {
  cpu::Q8Activations q;
};

}  // namespace

GgufBlockFormat::GgufBlockFormat(BlockWeight blocks, ActivationPrecision activations)
    : WeightFormat(blocks.rows(), blocks.cols()),
      type_(blocks.type()),
      layout_(activations == ActivationPrecision::kInt8 && cpu::CanRepackQ8Dot(type_, rows(), cols())
                  ? Layout::kQ8Dot
              : cpu::CanRepack(type_, rows(), cols()) ? Layout::kRepacked
                                                       : Layout::kRows),
      row_bytes_(blocks.row_bytes()) {
  if (layout_ == Layout::kQ8Dot) {
    packed_ = AlignedBytes(blocks.bytes());
    cpu::RepackQ8Dot(type_, blocks.data(), blocks.row_bytes(), rows(), cols(), packed_.data());
    SetImage(packed_.data(), packed_.size());
  } else if (layout_ == Layout::kRepacked) {
    packed_ = AlignedBytes(cpu::RepackedBytes(type_, rows(), cols()));
    cpu::RepackRows(type_, blocks.data(), blocks.row_bytes(), rows(), cols(), packed_.data());
    SetImage(packed_.data(), packed_.size());
  } else {
    blocks_ = std::move(blocks);
    SetImage(blocks_.data(), blocks_.bytes());
  }
}

int64_t GgufBlockFormat::ImageBytes(DType type, int64_t rows, int64_t cols) {
  // Every layout holds the stored bytes rearranged, the same size.
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

std::unique_ptr<PreparedInput> GgufBlockFormat::Prepare(const float* x, int64_t M, ThreadPool* pool) const {
  if (layout_ != Layout::kQ8Dot) return nullptr;
  auto in = std::make_unique<Q8Input>();
  in->q.Resize(M, cols());
  // Rows are quantized independently: a batch's rows are shared out.
  if (pool != nullptr && M >= 2 * pool->num_threads()) {
    pool->ParallelFor(M, [&](int64_t m0, int64_t m1) { cpu::QuantizeQ8Rows(x, cols(), m0, m1, &in->q); });
  } else {
    cpu::QuantizeQ8Rows(x, cols(), 0, M, &in->q);
  }
  return in;
}

bool GgufBlockFormat::SharesPreparedInput(const WeightFormat& other) const {
  // Q8 activations depend on x and the column count only, not on the
  // weight's block type.
  const auto* o = dynamic_cast<const GgufBlockFormat*>(&other);
  return o != nullptr && layout_ == Layout::kQ8Dot && o->layout_ == Layout::kQ8Dot && cols() == o->cols();
}

void GgufBlockFormat::ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y,
                                  int64_t ldy, int64_t n0, int64_t n1) const {
  switch (layout_) {
    case Layout::kQ8Dot:
      cpu::Q8DotMatMul(type_, static_cast<const Q8Input*>(prepared)->q, image(), y, ldy, M, cols(), n0, n1);
      return;
    case Layout::kRepacked:
      cpu::RepackedMatMulF32(type_, x, cols(), image(), y, ldy, M, cols(), n0, n1);
      return;
    case Layout::kRows:
      cpu::QuantMatMulF32(type_, x, cols(), image(), row_bytes_, y, ldy, M, cols(), n0, n1);
      return;
  }
}

void GgufBlockFormat::Row(int64_t r, float* out) const {
  switch (layout_) {
    case Layout::kQ8Dot:
      cpu::Q8DotRowF32(type_, image(), cols(), r, out);
      return;
    case Layout::kRepacked:
      cpu::RepackedRowF32(type_, image(), cols(), r, out);
      return;
    case Layout::kRows:
      DequantizeRowF32(type_, image() + r * row_bytes_, out, cols());
      return;
  }
}

}  // namespace tierserve
