#include "kernels/cpu/quant_matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/common/gguf_blocks.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul.h"

namespace tierserve::cpu {
namespace {

// Where the ISA has a register path it serves every M: its arithmetic for
// one row of X does not depend on M (batch invariance). Otherwise a tile of
// W is decoded to fp32 once and the fp32 kernel (row-invariant) runs over it.
constexpr int64_t kTileRows = 16;

int64_t BlockBytesOf(DType t) {
  switch (t) {
    case DType::kQ8_0: return kQ8_0BlockBytes;
    case DType::kQ4_0: return kQ4_0BlockBytes;
    case DType::kQ4_1: return kQ4_1BlockBytes;
    default: return 0;
  }
}

// Decodes rows [n, n + rows) of W into tile[rows][K].
void DecodeRows(DType type, const uint8_t* w, int64_t row_bytes, int64_t K, int64_t n, int64_t rows,
                float* tile) {
  for (int64_t r = 0; r < rows; ++r) DequantizeRowF32(type, w + (n + r) * row_bytes, tile + r * K, K);
}

void TiledPath(DType type, const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes, float* y,
               int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1) {
  thread_local std::vector<float> tile;
  if (static_cast<int64_t>(tile.size()) < kTileRows * K) tile.resize(kTileRows * K);
  for (int64_t n = n0; n < n1; n += kTileRows) {
    const int64_t rows = std::min(kTileRows, n1 - n);
    DecodeRows(type, w, row_bytes, K, n, rows, tile.data());
    MatMulF32(x, ldx, tile.data(), y + n, ldy, M, K, 0, rows);
  }
}

#if defined(__AVX512F__)

constexpr int64_t kQK = kGgufQK;  // elements per block
// How far ahead (in blocks) the register path prefetches each weight row.
constexpr int64_t kPrefetchBlocks = 16;

inline float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);  // F16C: exact, as F16ToF32
}

// Sums of each 32-element block of each row of X: the offset terms of
// Q4_0 / Q4_1 multiply them.
void BlockSums(const float* x, int64_t ldx, int64_t M, int64_t K, float* sums) {
  const int64_t nb = K / kQK;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* p = x + m * ldx + b * kQK;
      sums[m * nb + b] =
          _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)));
    }
  }
}

// The 32 weights of a block as two vectors of 16 floats (elements 0-15 and
// 16-31), before the block's scale d: integers q (Q8_0, Q4_1) or q (Q4_0,
// whose -8 offset is applied through the block sums).
template <DType kType>
inline void DecodeBlock(const uint8_t* blk, __m512* lo, __m512* hi, float* d, float* offset) {
  if constexpr (kType == DType::kQ8_0) {
    *d = HalfAt(blk);
    *offset = 0.0f;
    *lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2))));
    *hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18))));
  } else {
    const uint8_t* qs;
    *d = HalfAt(blk);
    if constexpr (kType == DType::kQ4_1) {
      *offset = HalfAt(blk + 2);  // m
      qs = blk + 4;
    } else {
      *offset = -8.0f * *d;  // Q4_0: d * (q - 8)
      qs = blk + 2;
    }
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i mask = _mm_set1_epi8(0x0F);
    *lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, mask)));
    *hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), mask)));
  }
}

// MR rows of X against NR rows of W starting at row n, decoding each block
// once for all MR rows of X; MR*NR independent accumulators hide the FMA
// latency. y = sum_b d_b * (q_b . x_b) + offset_b * sum(x_b).
template <DType kType, int MR, int NR>
inline void Tile(const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes, float* y, int64_t ldy,
                 int64_t nb, int64_t n, const float* sums) {
  constexpr int64_t bb = kType == DType::kQ8_0 ? kQ8_0BlockBytes
                         : kType == DType::kQ4_0 ? kQ4_0BlockBytes
                                                 : kQ4_1BlockBytes;
  __m512 acc[MR][NR];
  float off[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      acc[i][j] = _mm512_setzero_ps();
      off[i][j] = 0.0f;
    }
  const uint8_t* rows[NR];
  for (int j = 0; j < NR; ++j) rows[j] = w + (n + j) * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    __m512 lo[NR], hi[NR], dv[NR];
    float offset[NR];
    for (int j = 0; j < NR; ++j) {
      // Weights stream from memory once per step: ask for them well ahead.
      _mm_prefetch(reinterpret_cast<const char*>(rows[j] + (b + kPrefetchBlocks) * bb), _MM_HINT_T0);
      float d;
      DecodeBlock<kType>(rows[j] + b * bb, &lo[j], &hi[j], &d, &offset[j]);
      dv[j] = _mm512_set1_ps(d);
    }
    for (int i = 0; i < MR; ++i) {
      const float* xb = x + i * ldx + b * kQK;
      const __m512 x0 = _mm512_loadu_ps(xb);
      const __m512 x1 = _mm512_loadu_ps(xb + 16);
      for (int j = 0; j < NR; ++j) {
        const __m512 t = _mm512_fmadd_ps(hi[j], x1, _mm512_mul_ps(lo[j], x0));
        acc[i][j] = _mm512_fmadd_ps(t, dv[j], acc[i][j]);
        if constexpr (kType != DType::kQ8_0) off[i][j] += offset[j] * sums[i * nb + b];
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * ldy + n + j] = _mm512_reduce_add_ps(acc[i][j]) + off[i][j];
}

template <DType kType, int MR>
void RowsKernel(const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes, float* y, int64_t ldy,
                int64_t K, int64_t n0, int64_t n1, const float* sums) {
  const int64_t nb = K / kQK;
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) Tile<kType, MR, 4>(x, ldx, w, row_bytes, y, ldy, nb, n, sums);
  for (; n < n1; ++n) Tile<kType, MR, 1>(x, ldx, w, row_bytes, y, ldy, nb, n, sums);
}

template <DType kType>
void RegisterPath(const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes, float* y, int64_t ldy,
                  int64_t M, int64_t K, int64_t n0, int64_t n1) {
  thread_local std::vector<float> sums;
  const int64_t nb = K / kQK;
  if (static_cast<int64_t>(sums.size()) < M * nb) sums.resize(M * nb);
  if constexpr (kType != DType::kQ8_0) BlockSums(x, ldx, M, K, sums.data());
  int64_t m = 0;
  for (; m + 4 <= M; m += 4)
    RowsKernel<kType, 4>(x + m * ldx, ldx, w, row_bytes, y + m * ldy, ldy, K, n0, n1, sums.data() + m * nb);
  const float* xs = x + m * ldx;
  float* ys = y + m * ldy;
  const float* ss = sums.data() + m * nb;
  switch (M - m) {
    case 3: RowsKernel<kType, 3>(xs, ldx, w, row_bytes, ys, ldy, K, n0, n1, ss); break;
    case 2: RowsKernel<kType, 2>(xs, ldx, w, row_bytes, ys, ldy, K, n0, n1, ss); break;
    case 1: RowsKernel<kType, 1>(xs, ldx, w, row_bytes, ys, ldy, K, n0, n1, ss); break;
    default: break;
  }
}

#endif  // __AVX512F__

}  // namespace

bool QuantMatMulSupports(DType type) { return BlockBytesOf(type) != 0; }

void QuantMatMulF32(DType type, const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes,
                    float* y, int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1) {
#if defined(__AVX512F__)
  switch (type) {
    case DType::kQ8_0: return RegisterPath<DType::kQ8_0>(x, ldx, w, row_bytes, y, ldy, M, K, n0, n1);
    case DType::kQ4_0: return RegisterPath<DType::kQ4_0>(x, ldx, w, row_bytes, y, ldy, M, K, n0, n1);
    case DType::kQ4_1: return RegisterPath<DType::kQ4_1>(x, ldx, w, row_bytes, y, ldy, M, K, n0, n1);
    default: return;
  }
#endif
  TiledPath(type, x, ldx, w, row_bytes, y, ldy, M, K, n0, n1);
}

}  // namespace tierserve::cpu
