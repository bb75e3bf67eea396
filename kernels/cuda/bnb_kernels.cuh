// Bodies of the bitsandbytes CUDA kernels (kernels/cuda/bnb_kernels.cu), as
// `TS_HD` functions of (block index, thread index, block size, arguments).
// The __global__ wrappers only read blockIdx/threadIdx and call these, so the
// host compiler builds the very same code and kernels/cpu/grid_launcher.h runs
// it against the CPU kernels (bnb_kernels_host_test.cc). Host C++17; nothing
// here needs the CUDA headers.
//
// What the host cannot run, and so is not tested without a GPU:
//   - the barriers of QuantizeInt8Row (the host runs its three phases as three
//     launches, with the block's shared arrays held by the test);
//   - the warp-shuffle sum of the GEMV (the host sums the 32 lane partials
//     with BnbWarpXorSum, which is the same butterfly: lane i adds lane
//     i ^ 16, i ^ 8, ..., i ^ 1 in that order; fp32 addition commutes, so
//     every lane, and this function, ends with the same bits).
//
// No expression here may be contracted into an FMA by either compiler where
// the CPU kernels round twice: adds that follow a product go through
// BnbMulThenAdd / BnbAddRounded; the GEMV's one fused multiply-add is an
// explicit fmaf on both sides.
#ifndef TIERSERVE_KERNELS_CUDA_BNB_KERNELS_CUH_
#define TIERSERVE_KERNELS_CUDA_BNB_KERNELS_CUH_

#include <cstdint>

#include "kernels/common/bnb_quant.h"
#include "kernels/common/half.h"
#include "kernels/common/host_device.h"

namespace tierserve::cuda {

// The dtype a value is rounded to (and, for outputs, stored in). fp16 and bf16
// are stored as their uint16_t bit patterns (round to nearest even).
enum class BnbRound : int { kFp32 = 0, kFp16 = 1, kBf16 = 2 };

template <BnbRound R>
struct BnbStorage {
  using type = uint16_t;
};
template <>
struct BnbStorage<BnbRound::kFp32> {
  using type = float;
};
template <BnbRound R>
using BnbStorageT = typename BnbStorage<R>::type;

template <BnbRound R>
TS_HD BnbStorageT<R> BnbEncode(float v) {
  if constexpr (R == BnbRound::kFp16) {
    return F32ToF16(v);
  } else if constexpr (R == BnbRound::kBf16) {
    return F32ToBF16(v);
  } else {
    return v;
  }
}

// round_R(v) as an fp32 value.
template <BnbRound R>
TS_HD float BnbRoundThrough(float v) {
  if constexpr (R == BnbRound::kFp16) {
    return F16ToF32(F32ToF16(v));
  } else if constexpr (R == BnbRound::kBf16) {
    return BF16ToF32(F32ToBF16(v));
  } else {
    return v;
  }
}

// a + b, rounded once, where a is a product the compilers would otherwise fuse.
TS_HD float BnbAddRounded(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  volatile float va = a;
  return va + b;
#endif
}

// ---------------------------------------------------------------------------
// 4-bit weights (NF4 / FP4): the layout of kernels/cpu/fourbit_matmul.h, all
// pointers on the device. W [rows, cols] is flattened row-major (f = n * cols
// + k) and cut into blocks of `blocksize` that may straddle rows.
struct Bnb4bitView {
  const uint8_t* packed = nullptr;  // [(rows * cols + 1) / 2], element f's nibble: high if f even
  int64_t rows = 0;                 // N
  int64_t cols = 0;                 // K
  int64_t blocksize = 64;
  const float* code = nullptr;       // [16] quant_map
  const float* absmax = nullptr;     // [nblocks], or nullptr for double quant:
  const uint8_t* qabsmax = nullptr;  // [nblocks]
  const float* absmax2 = nullptr;    // [(nblocks + 255) / 256]
  float offset = 0.0f;
  const float* code2 = nullptr;  // [256]
};

// absmax of block b: stored, or code2[qabsmax[b]] * absmax2[b / 256] + offset
// (two roundings).
TS_HD float Bnb4bitBlockAbsmax(const Bnb4bitView& w, int64_t b) {
  if (w.absmax != nullptr) return w.absmax[b];
  return BnbRecoverAbsmax(w.code2[w.qabsmax[b]], w.absmax2[b / kBnbNestedBlocksize], w.offset);
}

// Dequantize: one thread per packed byte j (elements 2j and 2j + 1):
//   out[f] = round_R(code[nibble(f)] * absmax(f / blocksize)), f < rows * cols.
// Grid: ceil(ceil(n / 2) / block_dim) blocks.
template <BnbRound R>
TS_HD void Dequantize4bitBody(uint32_t block, uint32_t thread, uint32_t block_dim,
                              const Bnb4bitView& w, BnbStorageT<R>* out) {
  const int64_t n = w.rows * w.cols;
  const int64_t j = static_cast<int64_t>(block) * block_dim + thread;
  const int64_t f0 = 2 * j;
  if (f0 >= n) return;
  const uint8_t byte = w.packed[j];
  const int64_t b0 = f0 / w.blocksize;
  const float a0 = Bnb4bitBlockAbsmax(w, b0);
  out[f0] = BnbEncode<R>(BnbDequant4bit(w.code[byte >> 4], a0));
  const int64_t f1 = f0 + 1;
  if (f1 < n) {
    const int64_t b1 = f1 / w.blocksize;
    const float a1 = b1 == b0 ? a0 : Bnb4bitBlockAbsmax(w, b1);
    out[f1] = BnbEncode<R>(BnbDequant4bit(w.code[byte & 0x0F], a1));
  }
}

// fp32 -> fp16/bf16 bit patterns, one element per thread: out[i] = round_R(x[i]).
template <BnbRound R>
TS_HD void ConvertF32Body(uint32_t block, uint32_t thread, uint32_t block_dim, const float* x,
                          int64_t n, BnbStorageT<R>* out) {
  const int64_t i = static_cast<int64_t>(block) * block_dim + thread;
  if (i < n) out[i] = BnbEncode<R>(x[i]);
}

// ---------------------------------------------------------------------------
// Fused 4-bit GEMV (decode): y[m, n] = sum_k round_R(x[m, k]) * round_R(W[n, k]),
// with the factors of kernels/cpu/fourbit_matmul.h (W[n, k] = code * absmax in
// fp32, then rounded) and this order of summation: one warp per output; lane l
// takes k in [8l + 256i, 8l + 256i + 8) for i = 0, 1, ... and accumulates its
// terms in ascending k with fmaf (one rounding per term); the 32 lane sums are
// then added by the xor butterfly (BnbWarpXorSum). So lane 0, the longest,
// sums L = 8 * floor(K / 256) + min(8, K % 256) terms, and each output is
// within gamma_{L+5} * sum_k |term_k| of the exact sum (L + 5 roundings deep;
// L <= 8 * ceil(K / 256)), the order fixed by K alone.
inline constexpr int kBnbWarp = 32;
inline constexpr int kBnbGemvLaneElems = 8;

struct Bnb4bitGemvArgs {
  Bnb4bitView w;
  const float* x = nullptr;  // [M, K], row stride ldx
  int64_t ldx = 0;
  float* y = nullptr;  // [M, N], row stride ldy
  int64_t ldy = 0;
};

// The output row this thread's warp computes (may be >= rows: then it idles).
TS_HD int64_t Bnb4bitGemvRow(uint32_t block, uint32_t thread, uint32_t block_dim) {
  return static_cast<int64_t>(block) * (block_dim / kBnbWarp) + thread / kBnbWarp;
}

// Lane (thread % 32)'s partial sum for output (m, Bnb4bitGemvRow(...)); 0 for
// an idle warp. REQUIRES: block_dim a multiple of 32.
template <BnbRound R>
TS_HD float Bnb4bitGemvLanePartial(uint32_t block, uint32_t m, uint32_t thread,
                                   uint32_t block_dim, const Bnb4bitGemvArgs& a) {
  const int64_t n = Bnb4bitGemvRow(block, thread, block_dim);
  if (n >= a.w.rows) return 0.0f;
  const int64_t K = a.w.cols;
  const int64_t lane = thread % kBnbWarp;
  const float* xr = a.x + static_cast<int64_t>(m) * a.ldx;
  const int64_t row = n * K;
  int64_t cur_block = -1;
  float absmax = 0.0f;
  float acc = 0.0f;
  for (int64_t k0 = kBnbGemvLaneElems * lane; k0 < K; k0 += kBnbGemvLaneElems * kBnbWarp) {
    const int64_t k1 = k0 + kBnbGemvLaneElems < K ? k0 + kBnbGemvLaneElems : K;
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t f = row + k;
      const int64_t b = f / a.w.blocksize;
      if (b != cur_block) {
        cur_block = b;
        absmax = Bnb4bitBlockAbsmax(a.w, b);
      }
      const float wv = BnbRoundThrough<R>(BnbDequant4bit(a.w.code[BnbNibbleAt(a.w.packed, f)], absmax));
      acc = fmaf(BnbRoundThrough<R>(xr[k]), wv, acc);
    }
  }
  return acc;
}

// The warp's sum as __shfl_xor_sync computes it: v[i] += v[i ^ off] for
// off = 16, 8, 4, 2, 1. Overwrites v; returns v[0] (all lanes agree).
TS_HD float BnbWarpXorSum(float* v) {
  for (int off = kBnbWarp / 2; off > 0; off /= 2) {
    float next[kBnbWarp];
    for (int i = 0; i < kBnbWarp; ++i) next[i] = v[i] + v[i ^ off];
    for (int i = 0; i < kBnbWarp; ++i) v[i] = next[i];
  }
  return v[0];
}

// ---------------------------------------------------------------------------
// LLM.int8() activations: kernels/cpu/int8_matmul.h's QuantizeActivationsInt8,
// one CUDA block per row t, with a fixed outlier capacity per row:
//   O_t    = { k : |x[t,k]| >= threshold } when threshold > 0, else empty
//   SCA[t] = max_{k not in O_t} |x[t,k]|                  (0 when none)
//   q[t,k] = 0 for k in O_t or SCA[t] == 0, else
//            clamp(rint(x[t,k] * ((1 / SCA[t]) * 127)), -127, 127)
//   outlier_count[t] = |O_t|; the first min(|O_t|, capacity) outliers, in
//   ascending k, in outlier_col/outlier_x[t * capacity + e].
// A row with |O_t| > capacity is flagged by its count; the epilogue writes NaN
// for it rather than a result missing terms.
struct Int8QuantizeArgs {
  const float* x = nullptr;  // [M, K], row stride ldx
  int64_t ldx = 0;
  int64_t K = 0;
  float threshold = 0.0f;
  int8_t* q = nullptr;  // [M, K], row stride ldq
  int64_t ldq = 0;
  float* sca = nullptr;            // [M]
  int32_t* outlier_count = nullptr;  // [M]
  int32_t* outlier_col = nullptr;    // [M, capacity]
  float* outlier_x = nullptr;        // [M, capacity]
  int32_t outlier_capacity = 0;
};

// Thread `thread` of block_dim owns the contiguous columns [*k0, *k1), so that
// its outliers, placed after those of the threads before it, come out in
// ascending column order.
TS_HD void Int8RowChunk(int64_t K, uint32_t thread, uint32_t block_dim, int64_t* k0, int64_t* k1) {
  const int64_t chunk = (K + block_dim - 1) / block_dim;
  const int64_t b = chunk * thread;
  const int64_t e = b + chunk;
  *k0 = b < K ? b : K;
  *k1 = e < K ? e : K;
}

TS_HD bool Int8IsOutlier(float x, float threshold) {
  return threshold > 0.0f && fabsf(x) >= threshold;
}

// Phase 1, every thread: its chunk's non-outlier absmax and outlier count into
// the block's shared arrays part_max[thread], part_count[thread].
TS_HD void QuantizeInt8RowPhase1(uint32_t row, uint32_t thread, uint32_t block_dim,
                                 const Int8QuantizeArgs& a, float* part_max, int32_t* part_count) {
  int64_t k0, k1;
  Int8RowChunk(a.K, thread, block_dim, &k0, &k1);
  const float* xr = a.x + static_cast<int64_t>(row) * a.ldx;
  float m = 0.0f;
  int32_t count = 0;
  for (int64_t k = k0; k < k1; ++k) {
    const float v = fabsf(xr[k]);
    if (Int8IsOutlier(xr[k], a.threshold)) {
      ++count;
    } else {
      m = v > m ? v : m;
    }
  }
  part_max[thread] = m;
  part_count[thread] = count;
}

// Phase 2, thread 0 only: part_max[0] = SCA (a max is exact in any order),
// part_count[i] = the exclusive prefix sum (thread i's first outlier slot);
// writes sca[row] and outlier_count[row].
TS_HD void QuantizeInt8RowPhase2(uint32_t row, uint32_t block_dim, const Int8QuantizeArgs& a,
                                 float* part_max, int32_t* part_count) {
  float m = 0.0f;
  int32_t total = 0;
  for (uint32_t i = 0; i < block_dim; ++i) {
    m = part_max[i] > m ? part_max[i] : m;
    const int32_t c = part_count[i];
    part_count[i] = total;
    total += c;
  }
  part_max[0] = m;
  a.sca[row] = m;
  a.outlier_count[row] = total;
}

// Phase 3, every thread: q for its chunk, and its outliers into their slots.
TS_HD void QuantizeInt8RowPhase3(uint32_t row, uint32_t thread, uint32_t block_dim,
                                 const Int8QuantizeArgs& a, const float* part_max,
                                 const int32_t* part_offset) {
  int64_t k0, k1;
  Int8RowChunk(a.K, thread, block_dim, &k0, &k1);
  const float* xr = a.x + static_cast<int64_t>(row) * a.ldx;
  int8_t* qr = a.q + static_cast<int64_t>(row) * a.ldq;
  const float amax = part_max[0];
  const float inv = amax > 0.0f ? BnbInt8RowScale(amax) : 0.0f;
  int64_t slot = part_offset[thread];
  const int64_t base = static_cast<int64_t>(row) * a.outlier_capacity;
  for (int64_t k = k0; k < k1; ++k) {
    const float x = xr[k];
    if (Int8IsOutlier(x, a.threshold)) {
      if (slot < a.outlier_capacity) {
        a.outlier_col[base + slot] = static_cast<int32_t>(k);
        a.outlier_x[base + slot] = x;
      }
      ++slot;
      qr[k] = 0;
    } else if (amax > 0.0f) {
      float r = rintf(x * inv);
      r = r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r);
      qr[k] = static_cast<int8_t>(static_cast<int>(r));
    } else {
      qr[k] = 0;
    }
  }
}

// ---------------------------------------------------------------------------
// LLM.int8() epilogue, one thread per output (t, n): t = block_y, n = block_x *
// block_dim + thread:
//   y[t, n] = C[t, n] * (SCA[t] * scb[n]) * 6.200124e-05
//           + sum_{e < |O_t|} x_e * ((cb[n, col_e] * scb[n]) * 7.874016e-3)
// the outlier sum started at 0, in list order, each product rounded, and
// added only when O_t is non-empty (as kernels/cpu/int8_matmul.cc's StoreTile).
// NaN when the row's outliers overflowed the capacity.
struct Int8EpilogueArgs {
  const int32_t* c = nullptr;  // [M, N], row stride ldc
  int64_t ldc = 0;
  const float* sca = nullptr;  // [M]
  const int32_t* outlier_count = nullptr;  // [M]
  const int32_t* outlier_col = nullptr;    // [M, capacity]
  const float* outlier_x = nullptr;        // [M, capacity]
  int32_t outlier_capacity = 0;
  const int8_t* cb = nullptr;  // [N, K]
  const float* scb = nullptr;  // [N]
  int64_t N = 0;
  int64_t K = 0;
  float* y = nullptr;  // [M, N], row stride ldy
  int64_t ldy = 0;
};

TS_HD void Int8EpilogueBody(uint32_t block_x, uint32_t t, uint32_t thread, uint32_t block_dim,
                            const Int8EpilogueArgs& a) {
  const int64_t n = static_cast<int64_t>(block_x) * block_dim + thread;
  if (n >= a.N) return;
  const float s = a.scb[n];
  float v = BnbInt8MmDequant(a.c[static_cast<int64_t>(t) * a.ldc + n], a.sca[t], s);
  const int32_t count = a.outlier_count[t];
  if (count > a.outlier_capacity) {
    v = BitsToF32(0x7FC00000u);  // quiet NaN
  } else if (count > 0) {
    const int8_t* row = a.cb + n * a.K;
    const int64_t base = static_cast<int64_t>(t) * a.outlier_capacity;
    float o = 0.0f;
    for (int32_t e = 0; e < count; ++e) {
      const float w = BnbInt8Dequant(row[a.outlier_col[base + e]], s);
      o = BnbMulThenAdd(a.outlier_x[base + e], w, o);
    }
    v = BnbAddRounded(v, o);
  }
  a.y[static_cast<int64_t>(t) * a.ldy + n] = v;
}

}  // namespace tierserve::cuda

#endif  // TIERSERVE_KERNELS_CUDA_BNB_KERNELS_CUH_
