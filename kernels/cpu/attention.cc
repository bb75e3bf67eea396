#include "kernels/cpu/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TIERSERVE_ATTENTION_AVX2 1
#endif

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

#if defined(TIERSERVE_ATTENTION_AVX2)
__m256 Exp8(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_GE_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

// The sums of eight accumulators' lanes, one per output lane: each lane
// adds ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)).
__m256 Sum8x8(const __m256 a[8]) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
#endif

// The dot products of q with up to 8 key rows, as eight lanes: lane l of
// d-chunk c accumulates q[8c+l] * k[8c+l] (fused), then the lanes are added
// as Sum8x8 adds them. head_dim's tail beyond a multiple of 8 goes to the
// lanes it would fall in. out[count..8) is left unspecified.
void Dots(const float* q, const float* const* k, int64_t count, int64_t head_dim, float* out) {
#if defined(TIERSERVE_ATTENTION_AVX2)
  if (head_dim % 8 == 0) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    const float* rows[8];
    for (int64_t i = 0; i < 8; ++i) rows[i] = k[std::min(i, count - 1)];
    for (int64_t d = 0; d < head_dim; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[i] + d), qv, acc[i]);
    }
    _mm256_storeu_ps(out, Sum8x8(acc));
    return;
  }
#endif
  for (int64_t i = 0; i < count; ++i) {
    float lane[8] = {};
    for (int64_t d = 0; d < head_dim; ++d) lane[d % 8] = std::fma(k[i][d], q[d], lane[d % 8]);
    out[i] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  }
}

// o = o * c + sum_i p[i] * v[i], element by element, i in order. With
// AVX2, 64 columns at a time: eight independent accumulators in registers,
// so the FMAs of one position overlap instead of waiting on each other.
void UpdateOutput(float* o, float c, const float* p, const float* const* v, int64_t count, int64_t head_dim) {
  int64_t d = 0;
#if defined(TIERSERVE_ATTENTION_AVX2)
  const __m256 cv = _mm256_set1_ps(c);
  for (; d + 64 <= head_dim; d += 64) {
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_mul_ps(_mm256_loadu_ps(o + d + 8 * j), cv);
    for (int64_t i = 0; i < count; ++i) {
      const __m256 pi = _mm256_set1_ps(p[i]);
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(pi, _mm256_loadu_ps(v[i] + d + 8 * j), acc[j]);
    }
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(o + d + 8 * j, acc[j]);
  }
  for (; d + 8 <= head_dim; d += 8) {
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(o + d), cv);
    for (int64_t i = 0; i < count; ++i) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[i]), _mm256_loadu_ps(v[i] + d), acc);
    _mm256_storeu_ps(o + d, acc);
  }
#endif
  for (; d < head_dim; ++d) {
    float acc = o[d] * c;
    for (int64_t i = 0; i < count; ++i) acc = std::fma(p[i], v[i][d], acc);
    o[d] = acc;
  }
}

// One tile's online-softmax step for one query head: s holds the tile's
// kAttentionTile dot products (the first len valid). Scales them, moves the
// running max, turns s into the tile's weights exp(s - max) (0 past len) and
// returns the factor the earlier output and sum must be scaled by. The sum
// of the weights is added as the pairs (i, i + 8) and then a fixed tree over
// the eight pair sums.
float SoftmaxStep(float* s, int64_t len, float scale, float* part) {
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  static_assert(kAttentionTile == 16);
#if defined(TIERSERVE_ATTENTION_AVX2)
  const __m256 iota0 = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), iota1 = _mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15);
  const __m256 lenv = _mm256_set1_ps(static_cast<float>(len)), ninf = _mm256_set1_ps(kMinusInf);
  const __m256 sc = _mm256_set1_ps(scale);
  __m256 s0 = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(s), sc), _mm256_cmp_ps(iota0, lenv, _CMP_LT_OQ));
  __m256 s1 = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(s + 8), sc), _mm256_cmp_ps(iota1, lenv, _CMP_LT_OQ));
  __m256 mx = _mm256_max_ps(s0, s1);
  mx = _mm256_max_ps(mx, _mm256_permute2f128_ps(mx, mx, 1));
  mx = _mm256_max_ps(mx, _mm256_shuffle_ps(mx, mx, _MM_SHUFFLE(1, 0, 3, 2)));
  mx = _mm256_max_ps(mx, _mm256_shuffle_ps(mx, mx, _MM_SHUFFLE(2, 3, 0, 1)));
  const float m = std::fmax(part[0], _mm256_cvtss_f32(mx));
  const __m256 mv = _mm256_set1_ps(m);
  const __m256 p0 = Exp8(_mm256_sub_ps(s0, mv)), p1 = Exp8(_mm256_sub_ps(s1, mv));
  _mm256_storeu_ps(s, p0);
  _mm256_storeu_ps(s + 8, p1);
  const __m256 t = _mm256_add_ps(p0, p1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));  // t[i] + t[i+4]
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                           // (0+4)+(2+6), (1+5)+(3+7)
  const float sum = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
#else
  float mxs = kMinusInf;
  for (int64_t i = 0; i < kAttentionTile; ++i) {
    s[i] = i < len ? s[i] * scale : kMinusInf;
    mxs = std::fmax(mxs, s[i]);
  }
  const float m = std::fmax(part[0], mxs);
  for (int64_t i = 0; i < kAttentionTile; ++i) s[i] = ExpScalar(s[i] - m);
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = s[i] + s[i + 8];
  const float sum = ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
#endif
  const float c = ExpScalar(part[0] - m);
  part[0] = m;
  part[1] = std::fma(part[1], c, sum);
  return c;
}

}  // namespace

void AttentionExp(float* x, int64_t n) {
  int64_t i = 0;
#if defined(TIERSERVE_ATTENTION_AVX2)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, Exp8(_mm256_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) x[i] = ExpScalar(x[i]);
}

void AttendSpan(const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale, const KvView& kv,
                int64_t n, int64_t span, float* partials, int64_t partial_stride) {
  const int64_t begin = span * kAttentionSpan;
  const int64_t end = std::min(n, begin + kAttentionSpan);
  const int64_t num_q = num_kv * group;
  for (int64_t h = 0; h < num_q; ++h) {
    float* part = partials + h * partial_stride;
    part[0] = -std::numeric_limits<float>::infinity();
    part[1] = 0.0f;
    std::fill(part + 2, part + 2 + head_dim, 0.0f);
  }
  constexpr int64_t kHeadsAtOnce = 4;
  float scores[kHeadsAtOnce][kAttentionTile] = {};
  // Rows are found by walking the block table: block b, row r within it.
  struct Walker {
    int64_t b, r;
    const float* Key(const KvView& kv) const { return kv.key_blocks[b] + r * kv.row_stride + kv.offset; }
    const float* Value(const KvView& kv) const { return kv.value_blocks[b] + r * kv.row_stride + kv.offset; }
    void Next(int64_t block_tokens) {
      if (++r == block_tokens) {
        r = 0;
        ++b;
      }
    }
  };
  Walker at{begin / kv.block_tokens, begin % kv.block_tokens};
  // A second walker kPrefetchTiles tiles ahead asks for the rows into L2
  // while the tiles before them compute. It pays when a call reads one KV
  // head of each row (a strided read the hardware prefetchers follow
  // poorly): 92 -> 108 tok/s for SmolLM2 decode at 2,000 positions, when
  // that was the only schedule. Reading whole rows, it neither helps nor
  // hurts measurably.
  constexpr int64_t kPrefetchTiles = 4;
  const int64_t row_floats = num_kv * head_dim;  // what this call reads of a position's row
  int64_t ahead_pos = std::min(n, begin + kPrefetchTiles * kAttentionTile);
  Walker ahead{ahead_pos / kv.block_tokens, ahead_pos % kv.block_tokens};
  const float* keys[kAttentionTile];
  const float* values[kAttentionTile];
  for (int64_t t0 = begin; t0 < end; t0 += kAttentionTile) {
    const int64_t len = std::min(kAttentionTile, end - t0);
    for (int64_t i = 0; i < len; ++i, at.Next(kv.block_tokens)) {
      keys[i] = at.Key(kv);
      values[i] = at.Value(kv);
    }
    for (int64_t i = 0; i < kAttentionTile && ahead_pos < std::min(n, end + kPrefetchTiles * kAttentionTile);
         ++i, ++ahead_pos, ahead.Next(kv.block_tokens)) {
      const float* k = ahead.Key(kv);
      const float* v = ahead.Value(kv);
      for (int64_t d = 0; d < row_floats; d += 16) {  // a 64-byte line at a time
        __builtin_prefetch(k + d, 0, 2);
        __builtin_prefetch(v + d, 0, 2);
      }
    }
    // Every query head of a KV group reads the tile's keys and values while
    // they are in L1.
    for (int64_t g = 0; g < num_kv; ++g) {
      const float* gk[kAttentionTile];
      const float* gv[kAttentionTile];
      for (int64_t i = 0; i < len; ++i) {
        gk[i] = keys[i] + g * head_dim;
        gv[i] = values[i] + g * head_dim;
      }
      // Phase by phase over the group's heads, so that the heads' dependency
      // chains (dots, then softmax, then output) run side by side.
      for (int64_t j0 = 0; j0 < group; j0 += kHeadsAtOnce) {
        const int64_t heads = std::min(kHeadsAtOnce, group - j0);
        for (int64_t j = 0; j < heads; ++j) {
          const float* qh = q + (g * group + j0 + j) * head_dim;
          for (int64_t i = 0; i < len; i += 8) {
            Dots(qh, gk + i, std::min<int64_t>(8, len - i), head_dim, scores[j] + i);
          }
        }
        float c[kHeadsAtOnce];
        for (int64_t j = 0; j < heads; ++j) {
          c[j] = SoftmaxStep(scores[j], len, scale, partials + (g * group + j0 + j) * partial_stride);
        }
        for (int64_t j = 0; j < heads; ++j) {
          UpdateOutput(partials + (g * group + j0 + j) * partial_stride + 2, c[j], scores[j], gv, len, head_dim);
        }
      }
    }
  }
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
