#include "kernels/cpu/attention.h"

// GCC 12's AVX-512 intrinsics' headers read an undefined register in their
// own bodies (_mm512_undefined_ps), which -Wuninitialized reports.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <immintrin.h>

#include "kernels/common/half.h"
#include "kernels/cpu/target.h"

// This file is compiled with -ffp-contract=off (kernels/CMakeLists.txt): the
// portable path's multiplies and adds stay separate unless written as
// std::fma, as the vector paths' are, so every path gives the same bits.

namespace tierserve::cpu {
namespace {

// exp by range reduction to [-ln2/2, ln2/2] and a degree-5 polynomial
// (Cephes' expf coefficients). The vector and scalar forms run the same
// operations (fused where the other fuses), so they give the same bits.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kExpMin = -87.0f;  // below: 0 (2^n stays a normal float above it)
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

float ExpScalar(float x) {
  if (!(x >= kExpMin)) return 0.0f;  // also -inf and NaN-free inputs below the range
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kP0;
  p = std::fma(p, r, kP1);
  p = std::fma(p, r, kP2);
  p = std::fma(p, r, kP3);
  p = std::fma(p, r, kP4);
  p = std::fma(p, r, kP5);
  const float r2 = r * r;
  p = std::fma(p, r2, r) + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(e);
}


constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// What one call works on: the query heads of one KV head over one tile of
// up to kAttentionTile positions. kt[d * ks + i] is dimension d of the
// tile's position i; v[i * vs + d] its value. Lanes i >= len of kt may hold
// anything (they are masked); rows i >= len of v are never read.
// next_kt / next_v, when not null, are the keys and values (same strides) of
// the tile the span reads a few calls later: the vector paths ask for their
// cache lines a few at a time while this tile computes (PrefetchKeys /
// PrefetchValues). They are hints; the results do not depend on them.
template <typename T>
struct Tile {
  const T* kt;
  int64_t ks;
  const T* v;
  int64_t vs;
  int64_t len;
  const T* next_kt = nullptr;
  const T* next_v = nullptr;
};

constexpr int64_t kCacheLine = 64;

// Prefetches the cache lines of the next tile's keys of dimensions
// [d, d + 4): called once per 4 dimensions of the score loop, so the lines
// are asked for spread over the computation instead of in one burst (which
// stalled the loads behind a queue of outstanding misses).
template <typename T>
inline void PrefetchKeys(const Tile<T>& tile, int64_t d) {
  if (tile.next_kt == nullptr) return;
  // A dimension's 16 positions fill half a line (fp16) or one (fp32); rows
  // are adjacent when the block holds exactly one tile.
  constexpr int64_t kRowBytes = kAttentionTile * static_cast<int64_t>(sizeof(T));
  const int step = tile.ks == kAttentionTile && kRowBytes < kCacheLine ? static_cast<int>(kCacheLine / kRowBytes) : 1;
  for (int j = 0; j < 4; j += step) __builtin_prefetch(tile.next_kt + (d + j) * tile.ks, 0, 3);
}

// Prefetches the next tile's value row i, elements [d, d + n).
template <typename T>
inline void PrefetchValues(const Tile<T>& tile, int64_t i, int64_t d, int64_t n) {
  if (tile.next_v == nullptr) return;
  const char* row = reinterpret_cast<const char*>(tile.next_v + i * tile.vs + d);
  for (int64_t o = 0; o < n * static_cast<int64_t>(sizeof(T)); o += kCacheLine) __builtin_prefetch(row + o, 0, 3);
}

inline float ToF32(float x) { return x; }
inline float ToF32(uint16_t x) { return F16ToF32(x); }

// ---------------------------------------------------------------------------
// The definition, in plain C++. For each query head h and valid position i:
//   s_i = (a0 + a1) + (a2 + a3), a_j = sum over d = j mod 4 of q[d] * k_i[d]
//         (fused, d ascending)
//   x_i = s_i * scale, m' = max(m, max_i x_i), p_i = exp(x_i - m')
//   c = exp(m - m'), l' = l * c + sum_i p_i (fused; the sum over the tile's
//       16 lanes as SumTile adds them, invalid lanes 0)
//   o'[d] = o[d] * c, then + p_i * v_i[d] (fused, i ascending).
// The vector paths compute the same operations lane by lane.
float SumTile(const float* p) {
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = p[i] + p[i + 8];
  return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

template <typename T>
void AttendTilePortable(const float* q, int64_t heads, int64_t head_dim, float scale, const Tile<T>& tile,
                        float* partials, int64_t partial_stride) {
  for (int64_t h = 0; h < heads; ++h) {
    const float* qh = q + h * head_dim;
    float* part = partials + h * partial_stride;
    float p[kAttentionTile];
    float mx = kMinusInf;
    for (int64_t i = 0; i < kAttentionTile; ++i) {
      if (i >= tile.len) {
        p[i] = kMinusInf;
        continue;
      }
      float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t d = 0; d < head_dim; ++d) a[d & 3] = std::fma(qh[d], ToF32(tile.kt[d * tile.ks + i]), a[d & 3]);
      const float s = (a[0] + a[1]) + (a[2] + a[3]);
      p[i] = s * scale;
      mx = std::fmax(mx, p[i]);
    }
    const float m = std::fmax(part[0], mx);
    for (int64_t i = 0; i < kAttentionTile; ++i) p[i] = ExpScalar(p[i] - m);
    const float c = ExpScalar(part[0] - m);
    part[0] = m;
    part[1] = std::fma(part[1], c, SumTile(p));
    float* o = part + 2;
    for (int64_t d = 0; d < head_dim; ++d) {
      float acc = o[d] * c;
      for (int64_t i = 0; i < tile.len; ++i) acc = std::fma(p[i], ToF32(tile.v[i * tile.vs + d]), acc);
      o[d] = acc;
    }
  }
}

// ---------------------------------------------------------------------------
// AVX2 + FMA + F16C: a tile's 16 lanes are two registers of 8.
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c")
namespace avx2 {

using V = __m256;
constexpr int kWidth = 8;
constexpr int kMaxHeads = 3;  // 3 heads x 4 partial sums: 12 of the 16 ymm

inline V Zero() { return _mm256_setzero_ps(); }
inline V Splat(float f) { return _mm256_set1_ps(f); }
inline V Add(V a, V b) { return _mm256_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V Load(const float* p) { return _mm256_loadu_ps(p); }
inline V Load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline void Store(float* p, V a) { _mm256_storeu_ps(p, a); }

inline V Max(V a, V b) { return _mm256_max_ps(a, b); }
inline V AtLeast(V x, float lo) { return _mm256_cmp_ps(x, Splat(lo), _CMP_GE_OQ); }  // all ones where x >= lo
inline V ZeroUnless(V keep, V v) { return _mm256_and_ps(v, keep); }
inline V RoundToInteger(V v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for integral n in the normal range: n + 127 into the exponent bits.
inline V Pow2(V n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

inline V Masked(V s, V sc, int64_t i0, int64_t len) {
  const V lane = _mm256_add_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), Splat(static_cast<float>(i0)));
  const V valid = _mm256_cmp_ps(lane, Splat(static_cast<float>(len)), _CMP_LT_OQ);
  return _mm256_blendv_ps(Splat(kMinusInf), Mul(s, sc), valid);
}

inline float TileMax(const V (&x)[2]) {
  V mx = _mm256_max_ps(x[0], x[1]);
  mx = _mm256_max_ps(mx, _mm256_permute2f128_ps(mx, mx, 1));
  mx = _mm256_max_ps(mx, _mm256_shuffle_ps(mx, mx, _MM_SHUFFLE(1, 0, 3, 2)));
  mx = _mm256_max_ps(mx, _mm256_shuffle_ps(mx, mx, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm256_cvtss_f32(mx);
}

inline float TileSum(const V (&p)[2]) {
  const V t = Add(p[0], p[1]);                                                      // p[i] + p[i+8]
  __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));  // t[i] + t[i+4]
  u = _mm_add_ps(u, _mm_movehl_ps(u, u));                                           // (0+4)+(2+6), (1+5)+(3+7)
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

#include "kernels/cpu/attention_tile-inl.h"

}  // namespace avx2
TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------
// AVX-512: a tile's 16 lanes are one register.
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c,avx512f")
namespace avx512 {

using V = __m512;
constexpr int kWidth = 16;
constexpr int kMaxHeads = 4;  // 4 heads x 4 partial sums: 16 of the 32 zmm

inline V Zero() { return _mm512_setzero_ps(); }
inline V Splat(float f) { return _mm512_set1_ps(f); }
inline V Add(V a, V b) { return _mm512_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V Load(const float* p) { return _mm512_loadu_ps(p); }
inline V Load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline void Store(float* p, V a) { _mm512_storeu_ps(p, a); }

inline V Max(V a, V b) { return _mm512_max_ps(a, b); }
inline __mmask16 AtLeast(V x, float lo) { return _mm512_cmp_ps_mask(x, Splat(lo), _CMP_GE_OQ); }
inline V ZeroUnless(__mmask16 keep, V v) { return _mm512_maskz_mov_ps(keep, v); }
inline V RoundToInteger(V v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V Pow2(V n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}

inline V Masked(V s, V sc, int64_t i0, int64_t len) {
  const __mmask16 valid = static_cast<__mmask16>((1u << (len - i0)) - 1u);  // i0 is 0: one group
  return _mm512_mask_mul_ps(Splat(kMinusInf), valid, s, sc);
}

inline float TileMax(const V (&x)[1]) { return _mm512_reduce_max_ps(x[0]); }

inline float TileSum(const V (&p)[1]) {
  const __m256 t = _mm256_add_ps(_mm512_castps512_ps256(p[0]),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(p[0]), 1)));  // p[i] + p[i+8]
  __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  u = _mm_add_ps(u, _mm_movehl_ps(u, u));
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

#include "kernels/cpu/attention_tile-inl.h"

}  // namespace avx512
TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------

template <typename T>
void AttendTileOnPath(CpuPath path, const float* q, int64_t heads, int64_t head_dim, float scale,
                      const Tile<T>& tile, float* partials, int64_t partial_stride) {
  if (path >= CpuPath::kAvx512Vnni) {
    avx512::AttendTile(q, heads, head_dim, scale, tile, partials, partial_stride);
  } else if (path == CpuPath::kAvx2) {
    avx2::AttendTile(q, heads, head_dim, scale, tile, partials, partial_stride);
  } else {
    AttendTilePortable(q, heads, head_dim, scale, tile, partials, partial_stride);
  }
}

// The span's tiles of one element type.
template <typename T>
void AttendSpanTyped(CpuPath path, const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale,
                     const KvView& kv, int64_t begin, int64_t end, float* partials, int64_t partial_stride) {
  const int64_t bt = kv.block_tokens;
  // A tile that does not lie within one block with room for all 16 lanes
  // (block sizes that are not multiples of 16) is gathered into fp32 rows
  // first; conversion is exact, so the bits are those of the direct reads.
  thread_local std::vector<float> gathered;
  if (bt % kAttentionTile != 0) gathered.resize(static_cast<size_t>(2 * kAttentionTile * head_dim));
  // Each (tile, KV head) call has the keys and values of the call
  // kPrefetchCalls later prefetched while it computes. Single-threaded, the
  // hardware prefetchers alone left the loads waiting on memory; prefetching
  // a whole tile in one burst before computing it did not overlap either
  // (bench_attention, 2,000 positions, fp16, 1 thread, 3 same-run pairs:
  // 3.9-4.6 ms per token that way, 2.1-2.7 ms spread through the kernel).
  constexpr int64_t kPrefetchCalls = 3;
  for (int64_t t0 = begin; t0 < end; t0 += kAttentionTile) {
    const int64_t len = std::min(kAttentionTile, end - t0);
    const int64_t b = t0 / bt, r0 = t0 % bt;
    const T* kb = static_cast<const T*>(kv.key_blocks[b]);
    const T* vb = static_cast<const T*>(kv.value_blocks[b]);
    const bool direct = r0 + kAttentionTile <= bt;
    for (int64_t g = 0; g < num_kv; ++g) {
      const int64_t off = kv.offset + g * head_dim;
      const float* qg = q + g * group * head_dim;
      float* pg = partials + g * group * partial_stride;
      if (direct) {
        Tile<T> tile{kb + off * bt + r0, bt, vb + r0 * kv.kv_dim + off, kv.kv_dim, len};
        const int64_t ahead = g + kPrefetchCalls;
        // Tiles of a block size that is a multiple of 16 are all direct, so
        // the one ahead has this one's strides.
        if (const int64_t at = t0 + ahead / num_kv * kAttentionTile; at < end && bt % kAttentionTile == 0) {
          const int64_t ab = at / bt, ar = at % bt, aoff = kv.offset + ahead % num_kv * head_dim;
          tile.next_kt = static_cast<const T*>(kv.key_blocks[ab]) + aoff * bt + ar;
          tile.next_v = static_cast<const T*>(kv.value_blocks[ab]) + ar * kv.kv_dim + aoff;
        }
        AttendTileOnPath(path, qg, group, head_dim, scale, tile, pg, partial_stride);
        continue;
      }
      float* gk = gathered.data();
      float* gv = gk + kAttentionTile * head_dim;
      std::fill(gk, gk + head_dim * kAttentionTile, 0.0f);
      for (int64_t i = 0; i < len; ++i) {
        const int64_t p = t0 + i, pb = p / bt, pr = p % bt;
        const T* kpb = static_cast<const T*>(kv.key_blocks[pb]);
        const T* vpb = static_cast<const T*>(kv.value_blocks[pb]);
        for (int64_t d = 0; d < head_dim; ++d) {
          gk[d * kAttentionTile + i] = ToF32(kpb[(off + d) * bt + pr]);
          gv[i * head_dim + d] = ToF32(vpb[pr * kv.kv_dim + off + d]);
        }
      }
      const Tile<float> tile{gk, kAttentionTile, gv, head_dim, len};
      AttendTileOnPath(path, qg, group, head_dim, scale, tile, pg, partial_stride);
    }
  }
}

}  // namespace

void AttentionExp(float* x, int64_t n) {
  const CpuPath path = BestCpuPath();
  if (path >= CpuPath::kAvx512Vnni) {
    avx512::AttentionExpN(x, n);
  } else if (path == CpuPath::kAvx2) {
    avx2::AttentionExpN(x, n);
  } else {
    for (int64_t i = 0; i < n; ++i) x[i] = ExpScalar(x[i]);
  }
}

void AttendSpanOnPath(CpuPath path, const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale,
                      const KvView& kv, int64_t n, int64_t span, float* partials, int64_t partial_stride) {
  const int64_t begin = span * kAttentionSpan;
  const int64_t end = std::min(n, begin + kAttentionSpan);
  for (int64_t h = 0; h < num_kv * group; ++h) {
    float* part = partials + h * partial_stride;
    part[0] = kMinusInf;
    part[1] = 0.0f;
    std::fill(part + 2, part + 2 + head_dim, 0.0f);
  }
  if (kv.dtype == DType::kF16) {
    AttendSpanTyped<uint16_t>(path, q, num_kv, group, head_dim, scale, kv, begin, end, partials, partial_stride);
  } else {
    AttendSpanTyped<float>(path, q, num_kv, group, head_dim, scale, kv, begin, end, partials, partial_stride);
  }
}

void AttendSpan(const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale, const KvView& kv,
                int64_t n, int64_t span, float* partials, int64_t partial_stride) {
  AttendSpanOnPath(BestCpuPath(), q, num_kv, group, head_dim, scale, kv, n, span, partials, partial_stride);
}

void MergeSpans(const float* partials, int64_t num_spans, int64_t head_dim, float* out) {
  const int64_t stride = AttentionPartialFloats(head_dim);
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < num_spans; ++s) m = std::fmax(m, partials[s * stride]);
  float l = 0.0f;
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t s = 0; s < num_spans; ++s) {
    const float* part = partials + s * stride;
    float w = part[0] - m;
    AttentionExp(&w, 1);
    l = std::fma(part[1], w, l);
    for (int64_t d = 0; d < head_dim; ++d) out[d] = std::fma(part[2 + d], w, out[d]);
  }
  for (int64_t d = 0; d < head_dim; ++d) out[d] /= l;
}

}  // namespace tierserve::cpu
