#include "kernels/cpu/q8_dot_matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/common/gguf_blocks.h"
#include "kernels/common/half.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/target.h"

namespace tierserve::cpu {
namespace {

constexpr int64_t kQK = kGgufQK;
constexpr int64_t kR = kQ8DotRows;
constexpr int64_t kChunkBytes = kR * 4;  // 4 bytes of each of the 16 rows
// How far ahead a group's stream is asked for: 16 group-blocks (5-9 KB). At 4
// a 1-thread SmolLM2 decode step left its loads waiting on memory at the start
// of each of a layer's short matmuls; 16 decoded ~20% more tokens/s (paired
// runs, bench_generate --threads 1).
constexpr int64_t kPrefetchGroupBlocks = 16;
constexpr int kMaxRows = 4;  // rows of X per pass over a group's weights

struct Layout {
  int64_t bytes = 0;     // one group-block
  int64_t m_offset = 0;  // Q4_1
  int64_t q_offset = 0;
  int64_t chunks = 0;    // of kChunkBytes
  int64_t stored = 0;    // one stored block
};

Layout LayoutOf(DType type) {
  switch (type) {
    case DType::kQ8_0: return {kR * 2 + kR * 32, 0, kR * 2, 8, kQ8_0BlockBytes};
    case DType::kQ4_0: return {kR * 2 + kR * 16, 0, kR * 2, 4, kQ4_0BlockBytes};
    case DType::kQ4_1: return {kR * 4 + kR * 16, kR * 2, kR * 4, 4, kQ4_1BlockBytes};
    default: return {};
  }
}

inline float Half(const uint8_t* p) { return F16ToF32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }
inline float RoundF16(float f) { return F16ToF32(F32ToF16(f)); }

inline int32_t Load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The integer correction of a block's raw dot product: Q4_0's nibbles are
// q + 8, and the VNNI path feeds Q8_0 bytes as q + 128 (vpdpbusd multiplies
// unsigned by signed bytes).
inline int32_t Offset(DType type, bool q8_biased, int32_t qsum) {
  if (type == DType::kQ4_0) return 8 * qsum;
  if (type == DType::kQ8_0 && q8_biased) return 128 * qsum;
  return 0;
}

// One block of 32 activations: q = x * (127 / amax) rounded to nearest even
// (the default rounding mode; _mm256_round_ps rounds the same way), the
// block's amax and sum(q). A block holding a NaN or an infinity quantizes to
// zeros with amax NaN (NonFiniteBlock): its scales d and s are NaN, so every
// product that reads it is NaN, as the fp32 product would be (rounding NaN to
// an integer has no defined value).
struct BlockScale {
  float amax = 0;
  int32_t sum = 0;
};

BlockScale NonFiniteBlock(int8_t* q) {
  std::memset(q, 0, kQK);
  return BlockScale{std::numeric_limits<float>::quiet_NaN(), 0};
}

// 127 / amax; 0 for a zero block, and for one so small (amax < 127 / FLT_MAX,
// far below any activation) that the inverse overflows: its q are all 0.
inline float InverseScale(float amax) {
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  return id <= std::numeric_limits<float>::max() ? id : 0.0f;
}

BlockScale QuantizeBlockPortable(const float* xb, int8_t* q) {
  BlockScale s;
  for (int64_t k = 0; k < kQK; ++k) {
    const float a = std::fabs(xb[k]);
    if (!(a <= std::numeric_limits<float>::max())) return NonFiniteBlock(q);
    s.amax = std::max(s.amax, a);
  }
  const float id = InverseScale(s.amax);
  for (int64_t k = 0; k < kQK; ++k) {
    q[k] = static_cast<int8_t>(std::nearbyint(xb[k] * id));
    s.sum += q[k];
  }
  return s;
}

void QuantizeRowAvx2(const float* x, int64_t nb, int8_t* q, float* d, float* s, int32_t* qsum);

// ---------------------------------------------------------------------------
// Portable: the reference every path matches bit for bit.
void MatMulPortable(DType type, const Q8Activations& a, const uint8_t* w, float* y, int64_t ldy,
                    int64_t M, int64_t nb, int64_t n0, int64_t n1) {
  const Layout L = LayoutOf(type);
  for (int64_t n = n0; n < n1; n += kR) {
    const uint8_t* group = w + (n / kR) * nb * L.bytes;
    for (int64_t i = 0; i < M; ++i) {
      float acc[kR] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* gb = group + b * L.bytes;
        const int64_t blk = i * nb + b;
        const int8_t* xq = a.q.data() + blk * kQK;
        const float dx = a.d[blk];
        for (int64_t r = 0; r < kR; ++r) {
          int32_t dot = 0;
          for (int64_t c = 0; c < L.chunks; ++c) {
            for (int64_t t = 0; t < 4; ++t) {
              const uint8_t byte = gb[L.q_offset + c * kChunkBytes + r * 4 + t];
              if (type == DType::kQ8_0) {
                dot += static_cast<int8_t>(byte) * xq[4 * c + t];
              } else {
                dot += (byte & 0x0F) * xq[4 * c + t] + (byte >> 4) * xq[16 + 4 * c + t];
              }
            }
          }
          dot -= Offset(type, false, a.qsum[blk]);
          acc[r] = std::fma(Half(gb + 2 * r) * dx, static_cast<float>(dot), acc[r]);
          if (type == DType::kQ4_1) acc[r] = std::fma(Half(gb + L.m_offset + 2 * r), a.s[blk], acc[r]);
        }
      }
      std::memcpy(y + i * ldy + n, acc, sizeof acc);
    }
  }
}

// ---------------------------------------------------------------------------
// AVX2: maddubs(unsigned, signed) pairs into int16, madd with ones widens to
// int32. Q4: nibbles <= 15 times |q| <= 127: pairs <= 3,810. Q8_0: |w| <= 128
// against sign(q, w): pairs <= 32,512 < 2^15. Nothing saturates. The 16 rows
// are two halves of 8 (a chunk's first and last 32 bytes).
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c")

// A block's amax, or NaN when it holds a NaN or an infinity.
inline float BlockAmaxAvx2(const float* xb) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 largest = _mm256_set1_ps(std::numeric_limits<float>::max());
  __m256 m = _mm256_setzero_ps();
  __m256 finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int j = 0; j < 4; ++j) {
    const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + 8 * j));
    finite = _mm256_and_ps(finite, _mm256_cmp_ps(a, largest, _CMP_LE_OQ));  // false for NaN
    m = _mm256_max_ps(m, a);
  }
  if (_mm256_movemask_ps(finite) != 0xFF) return std::numeric_limits<float>::quiet_NaN();
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// q = x * id rounded to nearest even, for a finite block; returns sum(q).
inline int32_t BlockQuantizeAvx2(const float* xb, __m256 id, int8_t* q) {
  __m256i iv[4];
  for (int j = 0; j < 4; ++j) {
    iv[j] = _mm256_cvtps_epi32(
        _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * j), id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  __m256i sum = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  // Packing works within 128-bit lanes; the permutation puts the 32 bytes back in order.
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return _mm_cvtsi128_si32(s4);
}

// RoundF16 of 8 lanes: F16C rounds to nearest even as F32ToF16 does (a NaN
// stays a NaN, its payload aside).
inline __m256 RoundF16x8(__m256 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }

// One row of nb blocks, in passes over up to kRowChunk blocks: every
// block's amax, then the scales of 8 blocks at a time (their divisions and
// fp16 roundings in vectors), then each block's q and sum, then s. A block
// at a time, each block's reduction, two divisions and four scalar fp16
// conversions made one chain of latencies (SmolLM2's 576 columns took
// ~0.28 us, 1536 ~0.76 us).
void QuantizeRowAvx2(const float* x, int64_t nb, int8_t* q, float* d, float* s, int32_t* qsum) {
  constexpr int64_t kRowChunk = 64;
  alignas(32) float amax[kRowChunk], dd[kRowChunk], id[kRowChunk];
  for (int64_t b0 = 0; b0 < nb; b0 += kRowChunk) {
    const int64_t n = std::min(kRowChunk, nb - b0);
    for (int64_t b = 0; b < n; ++b) amax[b] = BlockAmaxAvx2(x + (b0 + b) * kQK);
    int64_t b = 0;
    for (; b + 8 <= n; b += 8) {
      const __m256 a = _mm256_load_ps(amax + b);
      const __m256 dv = _mm256_div_ps(a, _mm256_set1_ps(127.0f));
      _mm256_store_ps(dd + b, dv);
      _mm256_storeu_ps(d + b0 + b, RoundF16x8(dv));
      // InverseScale: 127 / amax, 0 where that is not finite (amax 0 or NaN,
      // or so small that the inverse overflows).
      const __m256 inv = _mm256_div_ps(_mm256_set1_ps(127.0f), a);
      const __m256 ok = _mm256_cmp_ps(inv, _mm256_set1_ps(std::numeric_limits<float>::max()), _CMP_LE_OQ);
      _mm256_store_ps(id + b, _mm256_and_ps(inv, ok));
    }
    for (; b < n; ++b) {
      dd[b] = amax[b] / 127.0f;
      d[b0 + b] = RoundF16(dd[b]);
      id[b] = InverseScale(amax[b]);
    }
    for (b = 0; b < n; ++b) {
      int8_t* qb = q + (b0 + b) * kQK;
      qsum[b0 + b] = std::isnan(amax[b]) ? NonFiniteBlock(qb).sum
                                         : BlockQuantizeAvx2(x + (b0 + b) * kQK, _mm256_set1_ps(id[b]), qb);
    }
    for (b = 0; b + 8 <= n; b += 8) {
      const __m256 sums = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qsum + b0 + b)));
      _mm256_storeu_ps(s + b0 + b, RoundF16x8(_mm256_mul_ps(_mm256_load_ps(dd + b), sums)));
    }
    for (; b < n; ++b) s[b0 + b] = RoundF16(dd[b] * static_cast<float>(qsum[b0 + b]));
  }
}

template <DType kType, int MR>
struct GroupAvx2 {
  static void Run(const Q8Activations& a, int64_t i0, const uint8_t* group, int64_t nb, float* y,
                  int64_t ldy, int64_t col) {
    const Layout L = LayoutOf(kType);
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < 2; ++h) {
      __m256 acc[MR];
      for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* gb = group + b * L.bytes;
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + 16 * h)));
        __m256 m = _mm256_setzero_ps();
        if constexpr (kType == DType::kQ4_1) {
          m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + L.m_offset + 16 * h)));
        }
        constexpr int kChunks = kType == DType::kQ8_0 ? 8 : 4;
        __m256i wv[kChunks];
        for (int c = 0; c < kChunks; ++c) {
          wv[c] = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(gb + L.q_offset + c * kChunkBytes + 32 * h));
        }
        for (int i = 0; i < MR; ++i) {
          const int64_t blk = (i0 + i) * nb + b;
          const int8_t* xq = a.q.data() + blk * kQK;
          __m256i dot = _mm256_setzero_si256();
          for (int c = 0; c < kChunks; ++c) {
            const __m256i xlo = _mm256_set1_epi32(Load4(xq + 4 * c));
            __m256i p;
            if constexpr (kType == DType::kQ8_0) {
              p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv[c]), _mm256_sign_epi8(xlo, wv[c]));
            } else {
              const __m256i xhi = _mm256_set1_epi32(Load4(xq + 16 + 4 * c));
              const __m256i lo = _mm256_and_si256(wv[c], nibble);
              const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv[c], 4), nibble);
              // Both halves' pairs <= 3,810 each: their sum fits int16.
              p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
            }
            dot = _mm256_add_epi32(dot, _mm256_madd_epi16(p, ones));
          }
          if constexpr (kType == DType::kQ4_0) {
            dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(Offset(kType, false, a.qsum[blk])));
          }
          const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(a.d[blk]));
          acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(dot), acc[i]);
          if constexpr (kType == DType::kQ4_1) acc[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.s[blk]), acc[i]);
        }
      }
      for (int i = 0; i < MR; ++i) _mm256_storeu_ps(y + (i0 + i) * ldy + col + 8 * h, acc[i]);
    }
  }
};

TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------
// AVX-512 VNNI: vpdpbusd adds, per int32 lane (one row), 4 unsigned weight
// bytes times 4 signed activation bytes. Q4 nibbles are unsigned already;
// Q8_0 bytes go in as q ^ 0x80 = q + 128, corrected by 128 * sum(x).
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

template <DType kType, int MR>
struct GroupVnni {
  static void Run(const Q8Activations& a, int64_t i0, const uint8_t* group, int64_t nb, float* y,
                  int64_t ldy, int64_t col) {
    const Layout L = LayoutOf(kType);
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* gb = group + b * L.bytes;
      // A group is one sequential stream; ask for it a few group-blocks ahead.
      for (int64_t off = 0; off < L.bytes; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(gb + kPrefetchGroupBlocks * L.bytes + off), _MM_HINT_T0);
      }
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb)));
      __m512 m = _mm512_setzero_ps();
      if constexpr (kType == DType::kQ4_1) {
        m = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb + L.m_offset)));
      }
      constexpr int kVectors = 8;  // Q8_0: 8 chunks; Q4: 4 chunks, low and high nibbles
      __m512i wv[kVectors];
      for (int c = 0; c < (kType == DType::kQ8_0 ? 8 : 4); ++c) {
        const __m512i v = _mm512_loadu_si512(gb + L.q_offset + c * kChunkBytes);
        if constexpr (kType == DType::kQ8_0) {
          wv[c] = _mm512_xor_si512(v, bias);
        } else {
          wv[c] = _mm512_and_si512(v, nibble);
          wv[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
        }
      }
      for (int i = 0; i < MR; ++i) {
        const int64_t blk = (i0 + i) * nb + b;
        const int8_t* xq = a.q.data() + blk * kQK;
        __m512i dot = _mm512_setzero_si512();
        for (int c = 0; c < kVectors; ++c) {
          // Q8_0 vector c: columns 4c..4c+3; Q4 vector c < 4: columns 4c..,
          // vector 4 + c: columns 16 + 4c.. -- the same 4 * c either way.
          dot = _mm512_dpbusd_epi32(dot, wv[c], _mm512_set1_epi32(Load4(xq + 4 * c)));
        }
        if constexpr (kType != DType::kQ4_1) {
          dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(Offset(kType, true, a.qsum[blk])));
        }
        const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(a.d[blk]));
        acc[i] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(dot), acc[i]);
        if constexpr (kType == DType::kQ4_1) acc[i] = _mm512_fmadd_ps(m, _mm512_set1_ps(a.s[blk]), acc[i]);
      }
    }
    for (int i = 0; i < MR; ++i) _mm512_storeu_ps(y + (i0 + i) * ldy + col, acc[i]);
  }
};

TIERSERVE_TARGET_END

// Every 16-row group of [n0, n1) against the rows of X, kMaxRows at a time
// (then the rest): Group<kType, MR>::Run is one ISA's kernel.
template <DType kType, template <DType, int> class Group>
void MatMulGroups(const Q8Activations& a, const uint8_t* w, float* y, int64_t ldy, int64_t M, int64_t nb,
                  int64_t n0, int64_t n1) {
  const Layout L = LayoutOf(kType);
  for (int64_t n = n0; n < n1; n += kR) {
    const uint8_t* group = w + (n / kR) * nb * L.bytes;
    int64_t i = 0;
    for (; i + kMaxRows <= M; i += kMaxRows) Group<kType, kMaxRows>::Run(a, i, group, nb, y, ldy, n);
    switch (M - i) {
      case 3: Group<kType, 3>::Run(a, i, group, nb, y, ldy, n); break;
      case 2: Group<kType, 2>::Run(a, i, group, nb, y, ldy, n); break;
      case 1: Group<kType, 1>::Run(a, i, group, nb, y, ldy, n); break;
      default: break;
    }
  }
}

}  // namespace

void Q8Activations::Resize(int64_t M, int64_t K) {
  rows = M;
  blocks = K / kQK;
  q.resize(static_cast<size_t>(M * K));
  d.resize(static_cast<size_t>(M * blocks));
  s.resize(static_cast<size_t>(M * blocks));
  qsum.resize(static_cast<size_t>(M * blocks));
}

namespace {

void QuantizeQ8RowsOnPath(CpuPath path, const float* x, int64_t ldx, int64_t m0, int64_t m1, Q8Activations* out) {
  const int64_t nb = out->blocks;
  for (int64_t i = m0; i < m1; ++i) {
    if (path != CpuPath::kPortable) {
      QuantizeRowAvx2(x + i * ldx, nb, out->q.data() + i * nb * kQK, out->d.data() + i * nb, out->s.data() + i * nb,
                      out->qsum.data() + i * nb);
      continue;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t blk = i * nb + b;
      const BlockScale s = QuantizeBlockPortable(x + i * ldx + b * kQK, out->q.data() + blk * kQK);
      const float d = s.amax / 127.0f;
      out->d[blk] = RoundF16(d);
      out->s[blk] = RoundF16(d * static_cast<float>(s.sum));
      out->qsum[blk] = s.sum;
    }
  }
}

}  // namespace

void QuantizeQ8OnPath(CpuPath path, const float* x, int64_t ldx, int64_t M, int64_t K, Q8Activations* out) {
  out->Resize(M, K);
  QuantizeQ8RowsOnPath(path, x, ldx, 0, M, out);
}

void QuantizeQ8Rows(const float* x, int64_t ldx, int64_t m0, int64_t m1, Q8Activations* out) {
  QuantizeQ8RowsOnPath(BestCpuPath(), x, ldx, m0, m1, out);
}

void QuantizeQ8(const float* x, int64_t ldx, int64_t M, int64_t K, Q8Activations* out) {
  QuantizeQ8OnPath(BestCpuPath(), x, ldx, M, K, out);
}

bool CanRepackQ8Dot(DType type, int64_t N, int64_t K) {
  return LayoutOf(type).bytes > 0 && N > 0 && K > 0 && N % kR == 0 && K % kQK == 0;
}

void RepackQ8Dot(DType type, const uint8_t* src, int64_t row_bytes, int64_t N, int64_t K, uint8_t* dst) {
  const Layout L = LayoutOf(type);
  const int64_t nb = K / kQK;
  const int64_t qbytes = type == DType::kQ8_0 ? kQK : kQK / 2;  // per stored block
  const int64_t qstart = L.stored - qbytes;                       // after d (and m)
  for (int64_t g = 0; g < N / kR; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* gb = dst + (g * nb + b) * L.bytes;
      for (int64_t r = 0; r < kR; ++r) {
        const uint8_t* blk = src + (g * kR + r) * row_bytes + b * L.stored;
        std::memcpy(gb + 2 * r, blk, 2);  // d
        if (type == DType::kQ4_1) std::memcpy(gb + L.m_offset + 2 * r, blk + 2, 2);
        for (int64_t c = 0; c < qbytes / 4; ++c) {
          std::memcpy(gb + L.q_offset + c * kChunkBytes + r * 4, blk + qstart + 4 * c, 4);
        }
      }
    }
  }
}

void Q8DotRowF32(DType type, const uint8_t* w, int64_t K, int64_t r, float* out) {
  const Layout L = LayoutOf(type);
  const int64_t nb = K / kQK;
  const int64_t qbytes = type == DType::kQ8_0 ? kQK : kQK / 2;
  const int64_t qstart = L.stored - qbytes;
  const int64_t g = r / kR, rr = r % kR;
  uint8_t block[kQ8_0BlockBytes];  // the largest stored block
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* gb = w + (g * nb + b) * L.bytes;
    std::memcpy(block, gb + 2 * rr, 2);
    if (type == DType::kQ4_1) std::memcpy(block + 2, gb + L.m_offset + 2 * rr, 2);
    for (int64_t c = 0; c < qbytes / 4; ++c) {
      std::memcpy(block + qstart + 4 * c, gb + L.q_offset + c * kChunkBytes + rr * 4, 4);
    }
    DequantizeRowF32(type, block, out + b * kQK, kQK);
  }
}

void Q8DotMatMulOnPath(CpuPath path, DType type, const Q8Activations& a, const uint8_t* w, float* y,
                       int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1) {
  const int64_t nb = K / kQK;
  switch (path) {
    case CpuPath::kAvx512Vnni:
    case CpuPath::kAvx512Bf16:
      switch (type) {
        case DType::kQ4_0: return MatMulGroups<DType::kQ4_0, GroupVnni>(a, w, y, ldy, M, nb, n0, n1);
        case DType::kQ4_1: return MatMulGroups<DType::kQ4_1, GroupVnni>(a, w, y, ldy, M, nb, n0, n1);
        case DType::kQ8_0: return MatMulGroups<DType::kQ8_0, GroupVnni>(a, w, y, ldy, M, nb, n0, n1);
        default: return;
      }
    case CpuPath::kAvx2:
      switch (type) {
        case DType::kQ4_0: return MatMulGroups<DType::kQ4_0, GroupAvx2>(a, w, y, ldy, M, nb, n0, n1);
        case DType::kQ4_1: return MatMulGroups<DType::kQ4_1, GroupAvx2>(a, w, y, ldy, M, nb, n0, n1);
        case DType::kQ8_0: return MatMulGroups<DType::kQ8_0, GroupAvx2>(a, w, y, ldy, M, nb, n0, n1);
        default: return;
      }
    case CpuPath::kPortable:
      return MatMulPortable(type, a, w, y, ldy, M, nb, n0, n1);
  }
}

void Q8DotMatMul(DType type, const Q8Activations& a, const uint8_t* w, float* y, int64_t ldy, int64_t M,
                 int64_t K, int64_t n0, int64_t n1) {
  Q8DotMatMulOnPath(BestCpuPath(), type, a, w, y, ldy, M, K, n0, n1);
}

}  // namespace tierserve::cpu
