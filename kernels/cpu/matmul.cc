#include "kernels/cpu/matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

namespace tierserve::cpu {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
using Vec = __m512;
inline Vec Zero() { return _mm512_setzero_ps(); }
inline Vec Load(const float* p) { return _mm512_loadu_ps(p); }
inline Vec Fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float Sum(Vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
using Vec = __m256;
inline Vec Zero() { return _mm256_setzero_ps(); }
inline Vec Load(const float* p) { return _mm256_loadu_ps(p); }
inline Vec Fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float Sum(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
#define TIERSERVE_SCALAR_MATMUL 1
#endif

#ifndef TIERSERVE_SCALAR_MATMUL
// MR rows of X against NR rows of W: MR*NR dot products of length K, sharing
// every load across the tile.
template <int MR, int NR>
inline void Tile(const float* x, int64_t ldx, const float* w, int64_t K, float* y, int64_t ldy) {
  Vec acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = Zero();
  const int64_t kv = K - K % kLanes;
  for (int64_t k = 0; k < kv; k += kLanes) {
    Vec wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Load(w + j * K + k);
    for (int i = 0; i < MR; ++i) {
      const Vec xv = Load(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = Fma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = Sum(acc[i][j]);
      for (int64_t k = kv; k < K; ++k) s += x[i * ldx + k] * w[j * K + k];
      y[i * ldy + j] = s;
    }
  }
}

template <int MR>
void RowsOfX(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t K,
             int64_t n0, int64_t n1) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) Tile<MR, 4>(x, ldx, w + n * K, K, y + n, ldy);
  for (; n < n1; ++n) Tile<MR, 1>(x, ldx, w + n * K, K, y + n, ldy);
}
#endif

}  // namespace

void MatMulF32(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t M,
               int64_t K, int64_t n0, int64_t n1) {
#ifdef TIERSERVE_SCALAR_MATMUL
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = n0; n < n1; ++n) {
      float s = 0;
      for (int64_t k = 0; k < K; ++k) s += x[m * ldx + k] * w[n * K + k];
      y[m * ldy + n] = s;
    }
#else
  // Walk W in column blocks that stay in cache while every row of X passes.
  constexpr int64_t kRowBlock = 64;
  for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
    const int64_t ne = std::min(n1, nb + kRowBlock);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) RowsOfX<4>(x + m * ldx, ldx, w, y + m * ldy, ldy, K, nb, ne);
    switch (M - m) {
      case 3: RowsOfX<3>(x + m * ldx, ldx, w, y + m * ldy, ldy, K, nb, ne); break;
      case 2: RowsOfX<2>(x + m * ldx, ldx, w, y + m * ldy, ldy, K, nb, ne); break;
      case 1: RowsOfX<1>(x + m * ldx, ldx, w, y + m * ldy, ldy, K, nb, ne); break;
      default: break;
    }
  }
#endif
}

}  // namespace tierserve::cpu
