#include "kernels/cpu/int8_matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/common/bnb_quant.h"
#include "kernels/cpu/target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace tierserve::cpu {
namespace {

// q rows are padded with zeros to this many bytes, so that every path can
// read q in whole vectors; only cb (as stored) needs tail handling.
constexpr int64_t kRowPad = 64;
constexpr int kMaxTileRows = 4;    // rows of q per tile
constexpr int64_t kTileCols = 16;  // rows of cb per tile: C is buffered on the stack

// GCC contracts a*b+c into an FMA across statements (-ffp-contract=fast is
// its default in C++); passing a product through here keeps it rounded, so
// the epilogue is the same expression on every build.
inline float Rounded(float v) {
  asm("" : "+x"(v));
  return v;
}

// The fp32 epilogue for rows [m0, m0 + mr) x columns [n, n + nc) from the
// exact C (c[i * kTileCols + j]). Shared by every path (and not inlined into
// any of them), so all paths give the same bits.
[[gnu::noinline]] void StoreTile(const Int8Activations& a, int64_t m0, int mr, const int32_t* c,
                                 int64_t nc, const int8_t* cb, const float* scb, int64_t K,
                                 int64_t n, float* y, int64_t ldy) {
  for (int i = 0; i < mr; ++i) {
    const int64_t t = m0 + i;
    const float sca = a.scale[t];
    const int64_t ob = a.outlier_begin[t];
    const int64_t oe = a.outlier_begin[t + 1];
    float* yr = y + t * ldy + n;
    for (int64_t j = 0; j < nc; ++j) {
      const float s = scb[n + j];
      // bitsandbytes' int8_mm_dequant: C * (SCA * SCB) * 6.200124e-05.
      float v = Rounded(BnbInt8MmDequant(c[i * kTileCols + j], sca, s));
      if (ob != oe) {
        const int8_t* row = cb + (n + j) * K;
        float o = 0.0f;
        for (int64_t e = ob; e < oe; ++e) {
          // int8_vectorwise_dequant: (CB * SCB) * 7.874016e-3.
          const float w = BnbInt8Dequant(row[a.outlier_col[e]], s);
          o += Rounded(a.outlier_x[e] * w);
        }
        v += o;
      }
      yr[j] = v;
    }
  }
}

// C for q rows [m0, m0 + mr) x cb rows [n, n + nc), plain loops.
void TilesPortable(const Int8Activations& a, int64_t m0, int mr, const int8_t* cb, int64_t K,
                   int64_t n, int64_t nc, int32_t* c) {
  for (int i = 0; i < mr; ++i) {
    const int8_t* q = a.q.data() + (m0 + i) * a.stride;
    for (int64_t j = 0; j < nc; ++j) {
      const int8_t* w = cb + (n + j) * K;
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<int32_t>(q[k]) * static_cast<int32_t>(w[k]);
      c[i * kTileCols + j] = s;
    }
  }
}

// Columns [k0, K) of one row into the running absmax m of its entries below
// the threshold (all of them when threshold <= 0): sets *any_outlier when an
// entry reaches the threshold and *non_finite when one of the others is NaN
// or infinite. The portable path's whole row and the AVX2 path's tail.
float RowAbsmaxScalar(const float* x, int64_t k0, int64_t K, float threshold, float m, bool* any_outlier,
                      bool* non_finite) {
  for (int64_t k = k0; k < K; ++k) {
    const float a = std::fabs(x[k]);
    if (threshold > 0.0f && a >= threshold) {
      *any_outlier = true;
    } else {
      *non_finite = *non_finite || !(a <= std::numeric_limits<float>::max());
      m = std::max(m, a);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------
// AVX2: maddubs(|q|, sign(cb, q)) = pairwise q*cb in int16; |q|, |cb| <= 127
// keep each pair sum within 2 * 127^2 < 2^15, so nothing saturates. madd with
// ones widens the pairs to int32.
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c")

inline int32_t HsumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

template <int MR, int NR>
inline void StepAvx2(const int8_t* q, int64_t qstride, const __m256i* wv, __m256i (*acc)[NR]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int i = 0; i < MR; ++i) {
    const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i * qstride));
    const __m256i aq = _mm256_abs_epi8(qv);
    for (int j = 0; j < NR; ++j) {
      const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(wv[j], qv));
      acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(p, ones));
    }
  }
}

// MR rows of q (qstride apart) against NR rows of w (K apart): c[i * ldc + j].
template <int MR, int NR>
inline void TileAvx2(const int8_t* q, int64_t qstride, const int8_t* w, int64_t K, int32_t* c,
                     int64_t ldc) {
  __m256i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  const int64_t kv = K & ~int64_t{31};
  for (int64_t k = 0; k < kv; k += 32) {
    __m256i wv[NR];
    for (int j = 0; j < NR; ++j) {
      // Rows are short (K bytes) and read NR at a time: the hardware
      // prefetchers lose the stream, so ask for the tile after next.
      _mm_prefetch(reinterpret_cast<const char*>(w + (j + 2 * NR) * K + k), _MM_HINT_T0);
      wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * K + k));
    }
    StepAvx2<MR, NR>(q + k, qstride, wv, acc);
  }
  if (kv < K) {
    // cb rows are not padded: copy the tail (q is zero past K, so the
    // zeros copied after it add nothing).
    alignas(32) int8_t tail[NR][32] = {};
    __m256i wv[NR];
    for (int j = 0; j < NR; ++j) {
      std::memcpy(tail[j], w + j * K + kv, static_cast<size_t>(K - kv));
      wv[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail[j]));
    }
    StepAvx2<MR, NR>(q + kv, qstride, wv, acc);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) c[i * ldc + j] = HsumI32(acc[i][j]);
}

template <int MR>
void RowsAvx2(const int8_t* q, int64_t qstride, const int8_t* cb, int64_t K, int64_t n, int64_t nc,
              int32_t* c) {
  // One row of q streams cb (decode: memory-bound), four rows of cb at once
  // keep four loads in flight; more rows of q share each cb load.
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t j = 0;
  for (; j + NR <= nc; j += NR) TileAvx2<MR, NR>(q, qstride, cb + (n + j) * K, K, c + j, kTileCols);
  for (; j < nc; ++j) TileAvx2<MR, 1>(q, qstride, cb + (n + j) * K, K, c + j, kTileCols);
}

// max |x[k]| over k with |x[k]| < threshold (all k when threshold <= 0),
// whether any k reached the threshold, and whether any of the others is NaN
// or infinite. A max is exact in any order, so this equals the scalar loop.
float RowAbsmaxAvx2(const float* x, int64_t K, float threshold, bool* any_outlier, bool* non_finite) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  // No threshold: NaN, which no comparison reaches (infinity would, and take
  // an infinite entry for an outlier where the scalar loop does not).
  const __m256 thr = _mm256_set1_ps(threshold > 0.0f ? threshold : std::numeric_limits<float>::quiet_NaN());
  const __m256 largest = _mm256_set1_ps(std::numeric_limits<float>::max());
  __m256 amax = _mm256_setzero_ps();
  __m256 hit = _mm256_setzero_ps();
  __m256 bad = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
    const __m256 out = _mm256_cmp_ps(a, thr, _CMP_GE_OQ);  // false for NaN
    hit = _mm256_or_ps(hit, out);
    const __m256 kept = _mm256_andnot_ps(out, a);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(kept, largest, _CMP_NLE_UQ));  // NaN or infinite
    amax = _mm256_max_ps(amax, kept);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, amax);
  float m = 0.0f;
  for (float v : lanes) m = std::max(m, v);
  *any_outlier = threshold > 0.0f && _mm256_movemask_ps(hit) != 0;
  *non_finite = _mm256_movemask_ps(bad) != 0;
  return RowAbsmaxScalar(x, k, K, threshold, m, any_outlier, non_finite);
}

// q[k] = clamp(nearbyint(x[k] * inv), -127, 127) for k < K, as the scalar loop.
void QuantizeRowAvx2(const float* x, int64_t K, float inv, int8_t* q) {
  const __m256 scale = _mm256_set1_ps(inv);
  const __m256 lo = _mm256_set1_ps(-127.0f);
  const __m256 hi = _mm256_set1_ps(127.0f);
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m256i v[4];
    for (int j = 0; j < 4; ++j) {
      const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), scale),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
    }
    // packs work per 128-bit lane; the permute restores element order.
    const __m256i p16 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    const __m256i ordered = _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), ordered);
  }
  for (; k < K; ++k) q[k] = static_cast<int8_t>(std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f));
}

void TilesAvx2(const Int8Activations& a, int64_t m0, int mr, const int8_t* cb, int64_t K, int64_t n,
               int64_t nc, int32_t* c) {
  const int8_t* q = a.q.data() + m0 * a.stride;
  switch (mr) {
    case 1: return RowsAvx2<1>(q, a.stride, cb, K, n, nc, c);
    case 2: return RowsAvx2<2>(q, a.stride, cb, K, n, nc, c);
    case 3: return RowsAvx2<3>(q, a.stride, cb, K, n, nc, c);
    default: return RowsAvx2<4>(q, a.stride, cb, K, n, nc, c);
  }
}

TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------
// AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, so it takes
// q + 128 (q ^ 0x80, in [1, 255]) against cb and the kernel subtracts
// 128 * rowsum(cb). The int32 lanes wrap, but the true C fits in int32, so
// the wrapped difference is exact.
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

inline int32_t HsumI32x16(__m512i v) {
  const __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  return HsumI32(s);
}

template <int MR, int NR>
inline void StepVnni(const int8_t* q, int64_t qstride, const __m512i* wv, __m512i (*acc)[NR]) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int i = 0; i < MR; ++i) {
    const __m512i qu = _mm512_xor_si512(_mm512_loadu_si512(q + i * qstride), flip);
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], qu, wv[j]);
  }
}

template <int MR, int NR>
inline void TileVnni(const int8_t* q, int64_t qstride, const int8_t* w, int64_t K,
                     const int32_t* row_sum, int32_t* c, int64_t ldc) {
  __m512i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  const int64_t kv = K & ~int64_t{63};
  for (int64_t k = 0; k < kv; k += 64) {
    __m512i wv[NR];
    // The next tile's rows, as the AVX2 kernel does two tiles ahead (one was
    // 5-10% quicker here than none or two, on rows read from memory).
    for (int j = 0; j < NR; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(w + (j + NR) * K + k), _MM_HINT_T0);
    }
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_si512(w + j * K + k);
    StepVnni<MR, NR>(q + k, qstride, wv, acc);
  }
  if (kv < K) {
    // Masked loads read only the row's own bytes; the zeros in the masked-off
    // lanes meet q's padding (128 after the flip) and add nothing.
    const __mmask64 mask = ~uint64_t{0} >> (64 - (K - kv));
    __m512i wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_epi8(mask, w + j * K + kv);
    StepVnni<MR, NR>(q + kv, qstride, wv, acc);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      const uint32_t biased = static_cast<uint32_t>(HsumI32x16(acc[i][j]));
      c[i * ldc + j] = static_cast<int32_t>(biased - 128u * static_cast<uint32_t>(row_sum[j]));
    }
}

template <int MR>
void RowsVnni(const int8_t* q, int64_t qstride, const int8_t* cb, int64_t K, const int32_t* row_sum,
              int64_t n, int64_t nc, int32_t* c) {
  // One row of cb per tile at one row of q: SmolLM2 int8 decode on 1 thread
  // (bench_quantized) faster in 6 of 7 same-run pairs against 4 rows per
  // tile, median +16%, as the 4-bit kernel. C is exact either way.
  constexpr int NR = MR == 1 ? 1 : 3;
  int64_t j = 0;
  for (; j + NR <= nc; j += NR)
    TileVnni<MR, NR>(q, qstride, cb + (n + j) * K, K, row_sum + n + j, c + j, kTileCols);
  for (; j < nc; ++j) TileVnni<MR, 1>(q, qstride, cb + (n + j) * K, K, row_sum + n + j, c + j, kTileCols);
}

void TilesVnni(const Int8Activations& a, int64_t m0, int mr, const int8_t* cb, int64_t K,
               const int32_t* row_sum, int64_t n, int64_t nc, int32_t* c) {
  const int8_t* q = a.q.data() + m0 * a.stride;
  switch (mr) {
    case 1: return RowsVnni<1>(q, a.stride, cb, K, row_sum, n, nc, c);
    case 2: return RowsVnni<2>(q, a.stride, cb, K, row_sum, n, nc, c);
    case 3: return RowsVnni<3>(q, a.stride, cb, K, row_sum, n, nc, c);
    default: return RowsVnni<4>(q, a.stride, cb, K, row_sum, n, nc, c);
  }
}

TIERSERVE_TARGET_END

}  // namespace

void Int8Activations::Resize(int64_t M, int64_t K) {
  rows = M;
  cols = K;
  stride = (K + kRowPad - 1) / kRowPad * kRowPad;
  q.resize(static_cast<size_t>(M * stride));
  scale.resize(static_cast<size_t>(M));
  outlier_begin.resize(static_cast<size_t>(M + 1));
  outlier_col.resize(static_cast<size_t>(M * K));
  outlier_x.resize(static_cast<size_t>(M * K));
}

void Int8RowSums(const int8_t* cb, int64_t N, int64_t K, int32_t* out) {
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += cb[n * K + k];
    out[n] = s;
  }
}

void QuantizeActivationsInt8OnPath(CpuPath path, const float* x, int64_t M, int64_t K,
                                   float threshold, Int8Activations* out) {
  const bool avx2 = path != CpuPath::kPortable;
  int64_t count = 0;
  out->outlier_begin[0] = 0;
  for (int64_t t = 0; t < M; ++t) {
    const float* xr = x + t * K;
    int8_t* qr = out->q.data() + t * out->stride;
    const int64_t first = count;
    float amax = 0.0f;
    bool any_outlier = false, non_finite = false;
    if (avx2) {
      amax = RowAbsmaxAvx2(xr, K, threshold, &any_outlier, &non_finite);
    } else {
      amax = RowAbsmaxScalar(xr, 0, K, threshold, 0.0f, &any_outlier, &non_finite);
    }
    // A NaN or an infinity among the int8 entries: the row's scale is NaN
    // and its q zeros, so its products are NaN, as in fp32 (rounding NaN to
    // an integer has no defined value).
    if (non_finite) amax = std::numeric_limits<float>::quiet_NaN();
    if (any_outlier) {
      for (int64_t k = 0; k < K; ++k) {
        if (std::fabs(xr[k]) >= threshold) {
          out->outlier_col[count] = static_cast<int32_t>(k);
          out->outlier_x[count] = xr[k];
          ++count;
        }
      }
    }
    out->outlier_begin[t + 1] = count;
    out->scale[t] = amax;
    if (amax > 0.0f) {  // false for NaN
      // torch evaluates bitsandbytes' 127.0 / row_stats as reciprocal * 127.
      const float inv = BnbInt8RowScale(amax);
      if (avx2) {
        QuantizeRowAvx2(xr, K, inv, qr);
      } else {
        for (int64_t k = 0; k < K; ++k) {
          qr[k] = static_cast<int8_t>(std::clamp(std::nearbyint(xr[k] * inv), -127.0f, 127.0f));
        }
      }
      for (int64_t e = first; e < count; ++e) qr[out->outlier_col[e]] = 0;
    } else {
      std::memset(qr, 0, static_cast<size_t>(K));
    }
    std::memset(qr + K, 0, static_cast<size_t>(out->stride - K));
  }
}

void QuantizeActivationsInt8(const float* x, int64_t M, int64_t K, float threshold,
                             Int8Activations* out) {
  QuantizeActivationsInt8OnPath(BestCpuPath(), x, M, K, threshold, out);
}

void Int8MatMulOnPath(CpuPath path, const Int8Activations& a, const int8_t* cb, const float* scb,
                      const Int8WeightAux& aux, float* y, int64_t ldy, int64_t M, int64_t K,
                      int64_t n0, int64_t n1) {
  alignas(64) int32_t c[kMaxTileRows * kTileCols];
  for (int64_t n = n0; n < n1; n += kTileCols) {
    const int64_t nc = std::min(kTileCols, n1 - n);
    for (int64_t m = 0; m < M; m += kMaxTileRows) {
      const int mr = static_cast<int>(std::min<int64_t>(kMaxTileRows, M - m));
      switch (path) {
        case CpuPath::kAvx512Bf16:
        case CpuPath::kAvx512Vnni: TilesVnni(a, m, mr, cb, K, aux.row_sum, n, nc, c); break;
        case CpuPath::kAvx2: TilesAvx2(a, m, mr, cb, K, n, nc, c); break;
        case CpuPath::kPortable: TilesPortable(a, m, mr, cb, K, n, nc, c); break;
      }
      StoreTile(a, m, mr, c, nc, cb, scb, K, n, y, ldy);
    }
  }
}

void Int8MatMul(const Int8Activations& a, const int8_t* cb, const float* scb,
                const Int8WeightAux& aux, float* y, int64_t ldy, int64_t M, int64_t K, int64_t n0,
                int64_t n1) {
  Int8MatMulOnPath(BestCpuPath(), a, cb, scb, aux, y, ldy, M, K, n0, n1);
}

}  // namespace tierserve::cpu
