#include "runtime/quant/four_bit_format.h"

#include <array>
#include <cstring>

#include "kernels/cpu/bnb_quantize.h"

namespace tierserve {
namespace {

// The signed 8-bit dynamic code of double quant, made once.
const float* DynamicCode() {
  static const std::array<float, 256> code = [] {
    std::array<float, 256> c;
    cpu::MakeDynamicCode(c.data());
    return c;
  }();
  return code.data();
}

cpu::ComputeDType KernelDType(ComputeDType t) {
  switch (t) {
    case ComputeDType::kFp16: return cpu::ComputeDType::kFp16;
    case ComputeDType::kBf16: return cpu::ComputeDType::kBf16;
    case ComputeDType::kFp32: break;
  }
  return cpu::ComputeDType::kFp32;
}

}  // namespace

FourBitFormat::Layout FourBitFormat::MakeLayout(int64_t n, bool double_quant) {
  const int64_t nblocks = cpu::FourBitBlockCount(n, kBlockSize);
  ImageLayout image;
  Layout l;
  l.packed = image.Add((n + 1) / 2);
  if (double_quant) {
    l.qabsmax = image.Add(nblocks);
    l.absmax2 = image.Add(static_cast<int64_t>(sizeof(float)) * cpu::FourBitBlockCount(nblocks, 256));
    l.offset = image.Add(sizeof(float));
  } else {
    l.absmax = image.Add(static_cast<int64_t>(sizeof(float)) * nblocks);
  }
  l.bytes = image.size();
  return l;
}

FourBitFormat::FourBitFormat(const float* w, int64_t rows, int64_t cols, Precision precision,
                             bool double_quant, ComputeDType compute)
    : WeightFormat(rows, cols),
      precision_(precision),
      compute_(KernelDType(compute)),
      layout_(MakeLayout(rows * cols, double_quant)),
      storage_(layout_.bytes) {
  const int64_t n = rows * cols;
  const int64_t nblocks = cpu::FourBitBlockCount(n, kBlockSize);
  const cpu::FourBitType type =
      precision == Precision::kNf4 ? cpu::FourBitType::kNf4 : cpu::FourBitType::kFp4;
  uint8_t* image = storage_.data();
  view_.rows = rows;
  view_.cols = cols;
  view_.blocksize = kBlockSize;
  view_.code = cpu::FourBitCode(type);
  if (double_quant) {
    std::vector<float> absmax(nblocks);
    cpu::Quantize4bit(w, n, kBlockSize, type, image + layout_.packed, absmax.data());
    float offset = 0.0f;
    cpu::DoubleQuantizeAbsmax(absmax.data(), nblocks, DynamicCode(), image + layout_.qabsmax,
                              reinterpret_cast<float*>(image + layout_.absmax2), &offset);
    std::memcpy(image + layout_.offset, &offset, sizeof(float));
    view_.code2 = DynamicCode();
  } else {
    cpu::Quantize4bit(w, n, kBlockSize, type, image + layout_.packed,
                      reinterpret_cast<float*>(image + layout_.absmax));
  }
  SetImage(image, layout_.bytes);
  OnBind();
}

void FourBitFormat::OnBind() {
  const uint8_t* image = this->image();
  view_.packed = image + layout_.packed;
  if (layout_.offset >= 0) {
    view_.qabsmax = image + layout_.qabsmax;
    view_.absmax2 = reinterpret_cast<const float*>(image + layout_.absmax2);
    std::memcpy(&view_.offset, image + layout_.offset, sizeof(float));
  } else {
    view_.absmax = reinterpret_cast<const float*>(image + layout_.absmax);
  }
}

void FourBitFormat::ForwardRows(const float* x, const PreparedInput*, int64_t M, float* y,
                                int64_t ldy, int64_t n0, int64_t n1) const {
  cpu::FourBitMatMul(view_, x, cols(), y, ldy, M, n0, n1, compute_);
}

void FourBitFormat::Row(int64_t r, float* out) const { cpu::FourBitRowF32(view_, r, out); }

}  // namespace tierserve
