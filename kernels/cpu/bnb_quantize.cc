#include "kernels/cpu/bnb_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/common/bnb_quant.h"

namespace tierserve::cpu {
namespace {

// ---- torch.sum order (aten/src/ATen/native/cpu/SumKernel.cpp, cascade_sum) ----
// The reduction sees the vector as "elements" of kLanes floats (a Vectorized<float>)
// or of one float; every accumulator below is lane-wise.
constexpr int kTorchVecLanes = 8;  // Vectorized<float>::size() in torch's AVX2 kernels
constexpr int kIlp = 4;            // row_sum's ilp_factor
constexpr int kLevels = 4;         // multi_row_sum's num_levels

int64_t CeilLog2(int64_t x) {
  if (x <= 2) return 1;
  int64_t bits = 0;
  for (uint64_t v = static_cast<uint64_t>(x) - 1; v != 0; v >>= 1) ++bits;
  return bits;
}

template <int L>
void AddInto(float* acc, const float* x) {
  for (int l = 0; l < L; ++l) acc[l] += x[l];
}

// multi_row_sum<acc, nrows = 4>: `size` rows of kIlp consecutive elements;
// acc_out[k] sums element k of every row, in cascaded levels.
template <int L>
void MultiRowSum(const float* in, int64_t size, float acc_out[kIlp][L]) {
  const int64_t level_power = std::max<int64_t>(4, CeilLog2(size) / kLevels);
  const int64_t level_step = int64_t{1} << level_power;
  const int64_t level_mask = level_step - 1;
  float acc[kLevels][kIlp][L] = {};
  auto row = [&](int64_t i, int k) { return in + (i * kIlp + k) * L; };

  int64_t i = 0;
  while (i + level_step <= size) {
    for (int64_t j = 0; j < level_step; ++j, ++i) {
      for (int k = 0; k < kIlp; ++k) AddInto<L>(acc[0][k], row(i, k));
    }
    for (int j = 1; j < kLevels; ++j) {
      for (int k = 0; k < kIlp; ++k) {
        AddInto<L>(acc[j][k], acc[j - 1][k]);
        std::fill(acc[j - 1][k], acc[j - 1][k] + L, 0.0f);
      }
      if ((i & (level_mask << (j * level_power))) != 0) break;
    }
  }
  for (; i < size; ++i) {
    for (int k = 0; k < kIlp; ++k) AddInto<L>(acc[0][k], row(i, k));
  }
  for (int j = 1; j < kLevels; ++j) {
    for (int k = 0; k < kIlp; ++k) AddInto<L>(acc[0][k], acc[j][k]);
  }
  for (int k = 0; k < kIlp; ++k) std::copy(acc[0][k], acc[0][k] + L, acc_out[k]);
}

// row_sum: `size` elements of L floats -> one element of L lanes in `out`.
template <int L>
void RowSum(const float* in, int64_t size, float out[L]) {
  const int64_t size_ilp = size / kIlp;
  float partial[kIlp][L];
  MultiRowSum<L>(in, size_ilp, partial);
  for (int64_t i = size_ilp * kIlp; i < size; ++i) AddInto<L>(partial[0], in + i * L);
  for (int k = 1; k < kIlp; ++k) AddInto<L>(partial[0], partial[k]);
  std::copy(partial[0], partial[0] + L, out);
}

// ---- 4-bit ----

// BnbNf4Nibble / BnbFp4Nibble with the fp32 midpoints computed once: the
// nibble of s is that of the sorted position equal to the number of
// midpoints below s.
struct NibbleTable {
  float mid[kBnb4bitCodeSize - 1];
  uint8_t nibble[kBnb4bitCodeSize];

  explicit NibbleTable(FourBitType t) {
    for (int k = 0; k < kBnb4bitCodeSize; ++k) {
      nibble[k] = static_cast<uint8_t>(t == FourBitType::kNf4 ? k : BnbFp4SortedToNibble(k));
    }
    for (int k = 0; k + 1 < kBnb4bitCodeSize; ++k) {
      const float lo = t == FourBitType::kNf4 ? BnbNf4Code(k) : BnbFp4SortedCode(k);
      const float hi = t == FourBitType::kNf4 ? BnbNf4Code(k + 1) : BnbFp4SortedCode(k + 1);
      mid[k] = (lo + hi) / 2.0f;
    }
  }
  int operator()(float s) const {
    int p = 0;
    for (int k = 0; k + 1 < kBnb4bitCodeSize; ++k) p += mid[k] < s ? 1 : 0;
    return nibble[p];
  }
};

void PutNibble(uint8_t* packed, int64_t i, int q) {
  uint8_t& b = packed[i >> 1];
  b = (i & 1) ? static_cast<uint8_t>((b & 0xF0) | q) : static_cast<uint8_t>((b & 0x0F) | (q << 4));
}

float BlockAbsmax(const float* x, int64_t len) {
  float m = 0.0f;
  for (int64_t i = 0; i < len; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

const float* FourBitCode(FourBitType t) {
  struct Tables {
    float nf4[kBnb4bitCodeSize];
    float fp4[kBnb4bitCodeSize];
  };
  static const Tables kTables = [] {
    Tables c;
    for (int i = 0; i < kBnb4bitCodeSize; ++i) {
      c.nf4[i] = BnbNf4Code(i);
      c.fp4[i] = BnbFp4Code(i);
    }
    return c;
  }();
  return t == FourBitType::kNf4 ? kTables.nf4 : kTables.fp4;
}

int64_t FourBitBlockCount(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }

void QuantizeInt8Rows(const float* w, int64_t rows, int64_t cols, int8_t* cb, float* scb) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    scb[r] = BlockAbsmax(wr, cols);
    const float scale = BnbInt8RowScale(scb[r]);
    for (int64_t c = 0; c < cols; ++c) cb[r * cols + c] = BnbInt8Quantize(wr[c], scale);
  }
}

void DequantizeInt8Rows(const int8_t* cb, const float* scb, int64_t rows, int64_t cols, float* w) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] = BnbInt8Dequant(cb[r * cols + c], scb[r]);
  }
}

void Quantize4bit(const float* x, int64_t n, int64_t blocksize, FourBitType t, uint8_t* packed,
                  float* absmax) {
  const NibbleTable nibble_of(t);
  const int64_t full_blocks = n / blocksize;
  for (int64_t b = 0; b < full_blocks; ++b) {
    const float* xb = x + b * blocksize;
    absmax[b] = BlockAbsmax(xb, blocksize);
    // Full blocks multiply by the reciprocal of the floored absmax but store
    // the absmax itself.
    const float inv = 1.0f / std::max(absmax[b], kBnbAbsmaxFloor);
    for (int64_t i = 0; i < blocksize; ++i) {
      PutNibble(packed, b * blocksize + i, nibble_of(BnbClampUnit(xb[i] * inv)));
    }
  }
  const int64_t rem = n - full_blocks * blocksize;
  if (rem > 0) {
    // The partial block divides by the floored absmax and stores the floored value.
    const float* xb = x + full_blocks * blocksize;
    const float am = std::max(BlockAbsmax(xb, rem), kBnbAbsmaxFloor);
    absmax[full_blocks] = am;
    for (int64_t i = 0; i < rem; ++i) {
      PutNibble(packed, full_blocks * blocksize + i, nibble_of(BnbClampUnit(xb[i] / am)));
    }
  }
  if (n % 2 != 0) PutNibble(packed, n, nibble_of(0.0f));
}

void Dequantize4bit(const uint8_t* packed, int64_t n, int64_t blocksize, const float* code,
                    const float* absmax, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = BnbDequant4bit(code[BnbNibbleAt(packed, i)], absmax[i / blocksize]);
  }
}

void MakeDynamicCode(float code[256]) {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for
  // exponent i = 0..6, the 2^i midpoints of torch.linspace(0.1, 1, 2^i + 1) in
  // fp32, times (float)10^(i-6), with both signs; then 0 and 1; sorted.
  static constexpr double kPow10[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  int n = 0;
  for (int i = 0; i < 7; ++i) {
    const int64_t steps = (int64_t{1} << i) + 1;
    // torch.linspace on the CPU: step in fp32, the first half counted up from
    // the start and the second half down from the end, each with one fused
    // multiply-add (what torch's AVX2 build computes).
    const float start = static_cast<float>(0.1);
    const float end = 1.0f;
    const float step = (end - start) / static_cast<float>(steps - 1);
    const int64_t halfway = steps / 2;
    auto linspace = [&](int64_t k) {
      return k < halfway ? std::fma(step, static_cast<float>(k), start)
                         : std::fma(-step, static_cast<float>(steps - k - 1), end);
    };
    const float scale = static_cast<float>(kPow10[i]);
    for (int64_t k = 0; k + 1 < steps; ++k) {
      const float mean = (linspace(k) + linspace(k + 1)) / 2.0f;
      code[n++] = scale * mean;
      code[n++] = -scale * mean;
    }
  }
  code[n++] = 0.0f;
  code[n++] = 1.0f;
  std::sort(code, code + n);
}

float SumLikeTorch(const float* x, int64_t n) {
  float total = 0.0f;
  if (n >= kTorchVecLanes) {
    // vectorized_inner_sum: the whole vectors lane-wise, then the scalar tail,
    // then the lanes in order.
    const int64_t vec_size = n / kTorchVecLanes;
    float lanes[kTorchVecLanes];
    RowSum<kTorchVecLanes>(x, vec_size, lanes);
    for (int64_t k = vec_size * kTorchVecLanes; k < n; ++k) total += x[k];
    for (int l = 0; l < kTorchVecLanes; ++l) total += lanes[l];
  } else {
    float s[1];
    RowSum<1>(x, n, s);
    total = s[0];
  }
  // The output starts at 0 and is accumulated into (CastStoreAccumulate).
  return 0.0f + total;
}

void DoubleQuantizeAbsmax(const float* absmax, int64_t nblocks, const float* code2, uint8_t* qabsmax,
                          float* absmax2, float* offset) {
  const float mean = SumLikeTorch(absmax, nblocks) / static_cast<float>(nblocks);
  *offset = mean;
  const int64_t nested = FourBitBlockCount(nblocks, kBnbNestedBlocksize);
  for (int64_t b = 0; b < nested; ++b) {
    const int64_t begin = b * kBnbNestedBlocksize;
    const int64_t end = std::min(begin + kBnbNestedBlocksize, nblocks);
    float am = 0.0f;
    for (int64_t i = begin; i < end; ++i) am = std::max(am, std::fabs(absmax[i] - mean));
    absmax2[b] = am;
    if (am == 0.0f) {
      std::fill(qabsmax + begin, qabsmax + end, uint8_t{0});
      continue;
    }
    const float inv = 1.0f / am;
    for (int64_t i = begin; i < end; ++i) {
      qabsmax[i] = static_cast<uint8_t>(BnbDynamicIndex((absmax[i] - mean) * inv, code2));
    }
  }
}

void RecoverAbsmax(const uint8_t* qabsmax, int64_t nblocks, const float* code2, const float* absmax2,
                   float offset, float* absmax) {
  for (int64_t i = 0; i < nblocks; ++i) {
    absmax[i] = BnbRecoverAbsmax(code2[qabsmax[i]], absmax2[i / kBnbNestedBlocksize], offset);
  }
}

void Dequantize4bitNested(const uint8_t* packed, int64_t n, int64_t blocksize, const float* code,
                          const uint8_t* qabsmax, const float* code2, const float* absmax2, float offset,
                          float* out) {
  const int64_t nblocks = FourBitBlockCount(n, blocksize);
  for (int64_t b = 0; b < nblocks; ++b) {
    const float am = BnbRecoverAbsmax(code2[qabsmax[b]], absmax2[b / kBnbNestedBlocksize], offset);
    const int64_t end = std::min(n, (b + 1) * blocksize);
    for (int64_t i = b * blocksize; i < end; ++i) {
      out[i] = BnbDequant4bit(code[BnbNibbleAt(packed, i)], am);
    }
  }
}

}  // namespace tierserve::cpu
