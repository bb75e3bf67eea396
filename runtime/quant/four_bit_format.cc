#include "runtime/quant/four_bit_format.h"

#include <array>

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

FourBitFormat::FourBitFormat(const float* w, int64_t rows, int64_t cols, Precision precision,
                             bool double_quant, ComputeDType compute)
    : WeightFormat(rows, cols), precision_(precision), compute_(KernelDType(compute)) {
  const int64_t n = rows * cols;
  const int64_t nblocks = cpu::FourBitBlockCount(n, kBlockSize);
  const cpu::FourBitType type =
      precision == Precision::kNf4 ? cpu::FourBitType::kNf4 : cpu::FourBitType::kFp4;
  packed_.resize((n + 1) / 2);
  absmax_.resize(nblocks);
  cpu::Quantize4bit(w, n, kBlockSize, type, packed_.data(), absmax_.data());
  view_.packed = packed_.data();
  view_.rows = rows;
  view_.cols = cols;
  view_.blocksize = kBlockSize;
  view_.code = cpu::FourBitCode(type);
  if (double_quant) {
    qabsmax_.resize(nblocks);
    absmax2_.resize(cpu::FourBitBlockCount(nblocks, 256));
    cpu::DoubleQuantizeAbsmax(absmax_.data(), nblocks, DynamicCode(), qabsmax_.data(),
                              absmax2_.data(), &view_.offset);
    absmax_ = std::vector<float>();
    view_.qabsmax = qabsmax_.data();
    view_.absmax2 = absmax2_.data();
    view_.code2 = DynamicCode();
  } else {
    view_.absmax = absmax_.data();
  }
}

int64_t FourBitFormat::bytes() const {
  return static_cast<int64_t>(packed_.size() + sizeof(float) * absmax_.size() + qabsmax_.size() +
                              sizeof(float) * absmax2_.size() +
                              (qabsmax_.empty() ? 0 : sizeof(float)));  // the offset
}

void FourBitFormat::ForwardRows(const float* x, const PreparedInput*, int64_t M, float* y,
                                int64_t ldy, int64_t n0, int64_t n1) const {
  cpu::FourBitMatMul(view_, x, cols(), y, ldy, M, n0, n1, compute_);
}

void FourBitFormat::Row(int64_t r, float* out) const { cpu::FourBitRowF32(view_, r, out); }

}  // namespace tierserve
