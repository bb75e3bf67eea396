#include "kernels/cpu/repacked_matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/common/gguf_blocks.h"
#include "kernels/cpu/matmul.h"

// Every M runs a register-tiled kernel per ISA, whose arithmetic for one row
// of X is the same whatever M is (batch invariance: a sequence's logits do
// not depend on what else is in the forward pass). A few rows decode each
// group-block in registers per kMaxGroupRows rows (GroupKernel); more rows
// decode it once per call into an L1 tile that every row reads
// (DecodedBlockRows), with the same operations per row in the same order, so
// both give the same bits. Without the register kernels, the tiled path
// (groups decoded to fp32, then the fp32 kernel, row-invariant too) serves
// every M.
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__F16C__) && defined(__FMA__))
#define TS_REPACKED_REGISTER_PATH 1
#endif

namespace tierserve::cpu {
namespace {

constexpr int64_t kQK = kGgufQK;
constexpr int64_t kR = kRepackRows;
// How far ahead a group's stream is asked for (as the int8 kernel; this one
// is bound by its arithmetic more than by the stream, 1-3% either way).
constexpr int64_t kPrefetchGroupBlocks = 16;

// Bytes of one group-block and where its parts start.
struct Layout {
  int64_t group_block_bytes = 0;
  int64_t m_offset = 0;  // Q4_1 only
  int64_t q_offset = 0;
  int64_t stored_block_bytes = 0;
};

Layout LayoutOf(DType type) {
  switch (type) {
    case DType::kQ8_0: return {kR * 2 + kR * 32, 0, kR * 2, kQ8_0BlockBytes};
    case DType::kQ4_0: return {kR * 2 + kR * 16, 0, kR * 2, kQ4_0BlockBytes};
    case DType::kQ4_1: return {kR * 4 + kR * 16, kR * 2, kR * 4, kQ4_1BlockBytes};
    default: return {};
  }
}

inline float Half(const uint8_t* p) { return F16ToF32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// One group-block decoded for the FMA loop of DecodedBlockRows: q as fp32 (not
// yet scaled), w[c * (32 / kChains) + s] the 16 rows' weights that partial
// sum c takes at its step s (ColumnOf), and the scale and offset per row.
struct DecodedGroupBlock {
  alignas(64) float w[kQK][kR];
  alignas(64) float d[kR];
  alignas(64) float offset[kR];  // Q4: m (Q4_1) or -8 d (Q4_0)
};

// Decodes the 16 rows of group-block `gb` into tile rows (stride K) at
// columns [col, col + 32): w = d * q (+ m), as the GGUF dequantizers compute it.
void DecodeGroupBlock(DType type, const uint8_t* gb, const Layout& L, float* tile, int64_t K,
                      int64_t col) {
  for (int64_t r = 0; r < kR; ++r) {
    const float d = Half(gb + 2 * r);
    float* out = tile + r * K + col;
    if (type == DType::kQ8_0) {
      for (int64_t k = 0; k < kQK; ++k) out[k] = static_cast<int8_t>(gb[L.q_offset + k * kR + r]) * d;
    } else {
      const float m = type == DType::kQ4_1 ? Half(gb + L.m_offset + 2 * r) : 0.0f;
      for (int64_t j = 0; j < kQK / 2; ++j) {
        const uint8_t byte = gb[L.q_offset + j * kR + r];
        if (type == DType::kQ4_1) {
          out[j] = (byte & 0x0F) * d + m;
          out[j + 16] = (byte >> 4) * d + m;
        } else {
          out[j] = ((byte & 0x0F) - 8) * d;
          out[j + 16] = ((byte >> 4) - 8) * d;
        }
      }
    }
  }
}

void TiledPath(DType type, const float* x, int64_t ldx, const uint8_t* w, float* y, int64_t ldy,
               int64_t M, int64_t K, int64_t n0, int64_t n1) {
  const Layout L = LayoutOf(type);
  const int64_t nb = K / kQK;
  thread_local std::vector<float> tile;
  if (static_cast<int64_t>(tile.size()) < kR * K) tile.resize(kR * K);
  for (int64_t n = n0; n < n1; n += kR) {
    const uint8_t* group = w + (n / kR) * nb * L.group_block_bytes;
    for (int64_t b = 0; b < nb; ++b) DecodeGroupBlock(type, group + b * L.group_block_bytes, L, tile.data(), K, b * kQK);
    MatMulF32(x, ldx, tile.data(), y + n, ldy, M, K, 0, kR);
  }
}

#if defined(__AVX512F__)

// 0.0f, 1.0f, ..., 15.0f: a 4-bit q as fp32, looked up by vpermps.
inline __m512 NibbleLevels() {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// The 16 bytes at p (one column pair of a Q4 group-block) as the fp32 values
// of their low and high nibbles. vpermps reads only an index's low 4 bits,
// so the zero-extended bytes select the low nibble's value as they are and
// the high nibble's after one shift: two lookups replace two masks and two
// int-to-float conversions, with the same values.
inline void NibblesToFloats(const uint8_t* p, __m512 levels, __m512* lo, __m512* hi) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  *lo = _mm512_permutexvar_ps(v, levels);
  *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), levels);
}

// MR rows of X against one 16-row group; four partial sums per row of X
// (even/odd columns, low/high halves) keep FMA chains short.
template <DType kType, int MR>
void GroupKernel(const float* x, int64_t ldx, const uint8_t* group, int64_t nb, const float* sums,
                 float* y, int64_t ldy) {
  const Layout L = LayoutOf(kType);
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* gb = group + b * L.group_block_bytes;
    // A group is one sequential stream; ask for it a few group-blocks ahead.
    for (int64_t off = 0; off < L.group_block_bytes; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(gb + kPrefetchGroupBlocks * L.group_block_bytes + off),
                   _MM_HINT_T0);
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb)));
    __m512 part[MR][4];
    for (int i = 0; i < MR; ++i)
      for (int p = 0; p < 4; ++p) part[i][p] = _mm512_setzero_ps();
    const uint8_t* q = gb + L.q_offset;
    if constexpr (kType == DType::kQ8_0) {
      for (int64_t k = 0; k < kQK; k += 2) {
        const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k * kR))));
        const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + (k + 1) * kR))));
        const int p = (k / 2) % 2 * 2;
        for (int i = 0; i < MR; ++i) {
          const float* xb = x + i * ldx + b * kQK;
          part[i][p] = _mm512_fmadd_ps(w0, _mm512_set1_ps(xb[k]), part[i][p]);
          part[i][p + 1] = _mm512_fmadd_ps(w1, _mm512_set1_ps(xb[k + 1]), part[i][p + 1]);
        }
      }
    } else {
      const __m512 levels = NibbleLevels();
      for (int64_t j = 0; j < kQK / 2; ++j) {
        __m512 lo, hi;
        NibblesToFloats(q + j * kR, levels, &lo, &hi);
        const int p = j % 2 * 2;
        for (int i = 0; i < MR; ++i) {
          const float* xb = x + i * ldx + b * kQK;
          part[i][p] = _mm512_fmadd_ps(lo, _mm512_set1_ps(xb[j]), part[i][p]);
          part[i][p + 1] = _mm512_fmadd_ps(hi, _mm512_set1_ps(xb[j + 16]), part[i][p + 1]);
        }
      }
    }
    // Per row of W: d * (q . x) + offset * sum(x), offset = m (Q4_1) or -8 d (Q4_0).
    __m512 offset = _mm512_setzero_ps();
    if constexpr (kType == DType::kQ4_1) {
      offset = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb + L.m_offset)));
    } else if constexpr (kType == DType::kQ4_0) {
      offset = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 dot = _mm512_add_ps(_mm512_add_ps(part[i][0], part[i][1]), _mm512_add_ps(part[i][2], part[i][3]));
      acc[i] = _mm512_fmadd_ps(dot, d, acc[i]);
      if constexpr (kType != DType::kQ8_0) acc[i] = _mm512_fmadd_ps(offset, _mm512_set1_ps(sums[i * nb + b]), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(y + i * ldy, acc[i]);
}

// Rows of X one kernel call takes at most.
constexpr int kMaxGroupRows = 4;

// x[0] + ... + x[31].
inline float BlockSum(const float* p) {
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)));
}

// GroupKernel's four partial sums per row of W: Q8_0's chain c takes columns
// k = 4s + c; Q4's chains 0, 1 the low, high nibbles of the even bytes j = 2s,
// chains 2, 3 those of the odd bytes j = 2s + 1.
constexpr int kChains = 4;

// Rows of X per pass over a decoded group-block: four zmm of partial sums
// each (one per chain), 24 independent FMA chains.
constexpr int kTileRows = 6;
// Rows of X whose partial sums of all four chains fit the 32 zmm registers
// with room for the weights (DecodedBlockRows).
constexpr int kInterleavedRows = 6;
// 16-row groups one pass over a kTileRows-row tile of X multiplies when X
// has at least kGroupsPerPassMinRows rows (batched decode and prefill): each
// splat of x then feeds two FMAs (DecodedGroupsRows; one SmolLM2 layer's
// products 10-12% quicker at 32 rows, about 5% at 16, 6-9% at 64 and 256;
// three or four groups per pass were slower than two at 32 and 64 rows).
// Fewer rows keep one group per pass, whose chains interleave
// (DecodedBlockRows; at 8 rows a chain at a time over two groups was 23-28%
// slower).
constexpr int kGroupsPerPass = 2;
constexpr int64_t kGroupsPerPassMinRows = 16;

// 16 fp32 lanes, one per row of a group: one zmm.
struct Vec16 {
  __m512 v;
};
inline Vec16 Zero16() { return {_mm512_setzero_ps()}; }
inline Vec16 Load16(const float* p) { return {_mm512_load_ps(p)}; }
inline void Store16(float* p, Vec16 a) { _mm512_store_ps(p, a.v); }
inline Vec16 Splat16(float f) { return {_mm512_set1_ps(f)}; }
inline Vec16 Add16(Vec16 a, Vec16 b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec16 Fma16(Vec16 a, Vec16 b, Vec16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline void KeepInRegisters(Vec16& a) { asm("" : "+v"(a.v)); }

// GroupKernel's decode of group-block `gb`, stored instead of multiplied.
template <DType kType>
void DecodeGroupBlockTile(const uint8_t* gb, DecodedGroupBlock* t) {
  const Layout L = LayoutOf(kType);
  for (int64_t off = 0; off < L.group_block_bytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(gb + kPrefetchGroupBlocks * L.group_block_bytes + off),
                 _MM_HINT_T0);
  }
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb)));
  _mm512_store_ps(t->d, d);
  const uint8_t* q = gb + L.q_offset;
  if constexpr (kType == DType::kQ8_0) {
    for (int64_t k = 0; k < kQK; ++k) {
      const __m512 wk = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k * kR))));
      _mm512_store_ps(t->w[k % 4 * 8 + k / 4], wk);  // chain k % 4, step k / 4
    }
  } else {
    const __m512 levels = NibbleLevels();
    for (int64_t j = 0; j < kQK / 2; ++j) {
      __m512 lo, hi;
      NibblesToFloats(q + j * kR, levels, &lo, &hi);
      const int64_t c = j % 2 * 2;
      _mm512_store_ps(t->w[c * 8 + j / 2], lo);
      _mm512_store_ps(t->w[(c + 1) * 8 + j / 2], hi);
    }
    if constexpr (kType == DType::kQ4_1) {
      _mm512_store_ps(t->offset, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb + L.m_offset))));
    } else {
      _mm512_store_ps(t->offset, _mm512_mul_ps(d, _mm512_set1_ps(-8.0f)));
    }
  }
}

#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)

// The AVX2 register path: a 16-row group is two 8-lane halves. MR rows of X
// against one group, two partial sums per half (alternate columns) so the
// FMA chains stay short.
template <DType kType, int MR>
void GroupKernel(const float* x, int64_t ldx, const uint8_t* group, int64_t nb, const float* sums,
                 float* y, int64_t ldy) {
  const Layout L = LayoutOf(kType);
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* gb = group + b * L.group_block_bytes;
    for (int64_t off = 0; off < L.group_block_bytes; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(gb + kPrefetchGroupBlocks * L.group_block_bytes + off),
                   _MM_HINT_T0);
    }
    const __m256 d[2] = {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb))),
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + 16)))};
    __m256 part[MR][2][2];
    for (int i = 0; i < MR; ++i)
      for (int h = 0; h < 2; ++h) part[i][h][0] = part[i][h][1] = _mm256_setzero_ps();
    const uint8_t* q = gb + L.q_offset;
    if constexpr (kType == DType::kQ8_0) {
      for (int64_t k = 0; k < kQK; ++k) {
        const uint8_t* col = q + k * kR;
        const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(col))));
        const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(col + 8))));
        const int p = k % 2;
        for (int i = 0; i < MR; ++i) {
          const __m256 xv = _mm256_set1_ps(x[i * ldx + b * kQK + k]);
          part[i][0][p] = _mm256_fmadd_ps(w0, xv, part[i][0][p]);
          part[i][1][p] = _mm256_fmadd_ps(w1, xv, part[i][1][p]);
        }
      }
    } else {
      const __m128i mask = _mm_set1_epi8(0x0F);
      for (int64_t j = 0; j < kQK / 2; ++j) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j * kR));
        const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
        const __m256 lo0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
        const __m256 lo1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
        const __m256 hi0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
        const __m256 hi1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
        for (int i = 0; i < MR; ++i) {
          const float* xb = x + i * ldx + b * kQK;
          const __m256 xl = _mm256_set1_ps(xb[j]), xh = _mm256_set1_ps(xb[j + 16]);
          part[i][0][0] = _mm256_fmadd_ps(lo0, xl, part[i][0][0]);
          part[i][1][0] = _mm256_fmadd_ps(lo1, xl, part[i][1][0]);
          part[i][0][1] = _mm256_fmadd_ps(hi0, xh, part[i][0][1]);
          part[i][1][1] = _mm256_fmadd_ps(hi1, xh, part[i][1][1]);
        }
      }
    }
    // Per row of W: d * (q . x) + offset * sum(x), offset = m (Q4_1) or -8 d (Q4_0).
    __m256 offset[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    if constexpr (kType == DType::kQ4_1) {
      offset[0] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + L.m_offset)));
      offset[1] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + L.m_offset + 16)));
    } else if constexpr (kType == DType::kQ4_0) {
      offset[0] = _mm256_mul_ps(d[0], _mm256_set1_ps(-8.0f));
      offset[1] = _mm256_mul_ps(d[1], _mm256_set1_ps(-8.0f));
    }
    for (int i = 0; i < MR; ++i) {
      for (int h = 0; h < 2; ++h) {
        const __m256 dot = _mm256_add_ps(part[i][h][0], part[i][h][1]);
        acc[i][h] = _mm256_fmadd_ps(dot, d[h], acc[i][h]);
        if constexpr (kType != DType::kQ8_0) {
          acc[i][h] = _mm256_fmadd_ps(offset[h], _mm256_set1_ps(sums[i * nb + b]), acc[i][h]);
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(y + i * ldy, acc[i][0]);
    _mm256_storeu_ps(y + i * ldy + 8, acc[i][1]);
  }
}

// Rows of X one kernel call takes at most (16 ymm registers).
constexpr int kMaxGroupRows = 2;

// x[0] + ... + x[31].
inline float BlockSum(const float* p) {
  const __m256 s8 = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)),
                                  _mm256_add_ps(_mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
  return _mm_cvtss_f32(s4);
}

// GroupKernel's two partial sums per row of W (per half): Q8_0's chain c
// takes columns k = 2s + c; Q4's chains 0, 1 the low, high nibbles of byte s.
constexpr int kChains = 2;

// Rows of X per pass over a decoded group-block: 6 rows x 2 halves of partial
// sums, the two weight halves and a broadcast fill the 16 ymm registers.
constexpr int kTileRows = 6;
constexpr int kInterleavedRows = 0;  // a chain at a time (2 x 6 x 2 ymm do not fit 16)
constexpr int kGroupsPerPass = 1;     // two groups' partial sums would not fit either
constexpr int64_t kGroupsPerPassMinRows = 0;

// 16 fp32 lanes, one per row of a group: two ymm halves.
struct Vec16 {
  __m256 h[2];
};
inline Vec16 Zero16() { return {{_mm256_setzero_ps(), _mm256_setzero_ps()}}; }
inline Vec16 Load16(const float* p) { return {{_mm256_load_ps(p), _mm256_load_ps(p + 8)}}; }
inline void Store16(float* p, Vec16 a) {
  _mm256_store_ps(p, a.h[0]);
  _mm256_store_ps(p + 8, a.h[1]);
}
inline Vec16 Splat16(float f) {
  const __m256 v = _mm256_set1_ps(f);
  return {{v, v}};
}
inline Vec16 Add16(Vec16 a, Vec16 b) {
  return {{_mm256_add_ps(a.h[0], b.h[0]), _mm256_add_ps(a.h[1], b.h[1])}};
}
inline Vec16 Fma16(Vec16 a, Vec16 b, Vec16 c) {
  return {{_mm256_fmadd_ps(a.h[0], b.h[0], c.h[0]), _mm256_fmadd_ps(a.h[1], b.h[1], c.h[1])}};
}
inline void KeepInRegisters(Vec16& a) { asm("" : "+x"(a.h[0]), "+x"(a.h[1])); }

// GroupKernel's decode of group-block `gb`, stored instead of multiplied.
template <DType kType>
void DecodeGroupBlockTile(const uint8_t* gb, DecodedGroupBlock* t) {
  const Layout L = LayoutOf(kType);
  for (int64_t off = 0; off < L.group_block_bytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(gb + kPrefetchGroupBlocks * L.group_block_bytes + off),
                 _MM_HINT_T0);
  }
  const __m256 d[2] = {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb))),
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + 16)))};
  _mm256_store_ps(t->d, d[0]);
  _mm256_store_ps(t->d + 8, d[1]);
  const uint8_t* q = gb + L.q_offset;
  if constexpr (kType == DType::kQ8_0) {
    for (int64_t k = 0; k < kQK; ++k) {
      const uint8_t* col = q + k * kR;
      float* out = t->w[k % 2 * 16 + k / 2];
      _mm256_store_ps(out, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(col)))));
      _mm256_store_ps(out + 8, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(col + 8)))));
    }
  } else {
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (int64_t j = 0; j < kQK / 2; ++j) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j * kR));
      const __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
      _mm256_store_ps(t->w[j], _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)));
      _mm256_store_ps(t->w[j] + 8, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))));
      _mm256_store_ps(t->w[16 + j], _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)));
      _mm256_store_ps(t->w[16 + j] + 8, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))));
    }
    for (int h = 0; h < 2; ++h) {
      if constexpr (kType == DType::kQ4_1) {
        _mm256_store_ps(t->offset + 8 * h, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb + L.m_offset + 16 * h))));
      } else {
        _mm256_store_ps(t->offset + 8 * h, _mm256_mul_ps(d[h], _mm256_set1_ps(-8.0f)));
      }
    }
  }
}

#endif  // __AVX512F__ / __AVX2__

#if defined(TS_REPACKED_REGISTER_PATH)

constexpr int64_t kChainSteps = kQK / kChains;

// The column of the block whose weights partial sum c takes at step s.
template <DType kType>
constexpr int64_t ColumnOf(int c, int s) {
  if constexpr (kType == DType::kQ8_0) {
    return kChains * s + c;
  } else {
    return c % 2 * (kQK / 2) + kChains / 2 * s + c / 2;
  }
}

// The end of a block for MR rows of X through one decoded group-block: each
// row's kChains partial sums added as GroupKernel adds them, scaled into its
// accumulator acc[i][16], plus the offset times the row's block sum
// (sums[i * nb]).
template <DType kType, int MR>
void FinishBlock(const Vec16 (&part)[kChains][MR], const DecodedGroupBlock& t, const float* sums, int64_t nb,
                 float* acc) {
  const Vec16 d = Load16(t.d);
  for (int i = 0; i < MR; ++i) {
    Vec16 dot;
    if constexpr (kChains == 2) {
      dot = Add16(part[0][i], part[1][i]);
    } else {
      dot = Add16(Add16(part[0][i], part[1][i]), Add16(part[2][i], part[3][i]));
    }
    Vec16 a = Fma16(dot, d, Load16(acc + i * kR));
    if constexpr (kType != DType::kQ8_0) a = Fma16(Load16(t.offset), Splat16(sums[i * nb]), a);
    Store16(acc + i * kR, a);
  }
}

// MR rows of X (x at the block's first column, sums[i * nb] row i's block
// sum) through G decoded group-blocks of consecutive groups (t[g]),
// continuing their accumulators acc[g][MR][16]: per row and group,
// GroupKernel's operations in GroupKernel's order, with loads of the weights
// it decodes. A chain at a time, so its MR x G partial sums stay in
// registers and each splat of x feeds G FMAs (one group: MR + 1 loads per MR
// FMAs; two: MR + 2 per 2 MR); the finished chains wait in memory, which
// leaves their bits alone.
template <DType kType, int MR, int G>
void DecodedGroupsRows(const DecodedGroupBlock* const* t, const float* x, int64_t ldx, const float* sums,
                       int64_t nb, float* const* acc) {
  Vec16 done[G][kChains][MR];
  for (int c = 0; c < kChains; ++c) {
    Vec16 part[MR][G];
    for (int i = 0; i < MR; ++i)
      for (int g = 0; g < G; ++g) part[i][g] = Zero16();
    for (int s = 0; s < kChainSteps; ++s) {
      Vec16 w[G];
      for (int g = 0; g < G; ++g) {
        w[g] = Load16(t[g]->w[c * kChainSteps + s]);
        // With registers to spare (few rows) GCC folds this load into each
        // row's FMA, and the loop runs out of load slots.
        if constexpr (MR * G <= 4) KeepInRegisters(w[g]);
      }
      const int64_t col = ColumnOf<kType>(c, s);
      for (int i = 0; i < MR; ++i) {
        const Vec16 xv = Splat16(x[i * ldx + col]);
        for (int g = 0; g < G; ++g) part[i][g] = Fma16(w[g], xv, part[i][g]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int g = 0; g < G; ++g) done[g][c][i] = part[i][g];
  }
  for (int g = 0; g < G; ++g) FinishBlock<kType, MR>(done[g], *t[g], sums, nb, acc[g]);
}

// MR rows of X through one decoded group-block, as DecodedGroupsRows with
// one group. Up to kInterleavedRows rows, every chain's partial sums are in
// registers at once: none waits in memory, and each step feeds kChains x MR
// independent FMAs (AVX-512, 6 rows: 24 zmm; batch 8 decode +10%, batch 32
// +4-8% against a chain at a time).
template <DType kType, int MR>
void DecodedBlockRows(const DecodedGroupBlock& t, const float* x, int64_t ldx, const float* sums,
                      int64_t nb, float* acc) {
  if constexpr (MR <= kInterleavedRows) {
    Vec16 part[kChains][MR];
    for (int c = 0; c < kChains; ++c)
      for (int i = 0; i < MR; ++i) part[c][i] = Zero16();
    for (int s = 0; s < kChainSteps; ++s) {
      for (int c = 0; c < kChains; ++c) {
        const Vec16 w = Load16(t.w[c * kChainSteps + s]);
        const int64_t col = ColumnOf<kType>(c, s);
        for (int i = 0; i < MR; ++i) part[c][i] = Fma16(w, Splat16(x[i * ldx + col]), part[c][i]);
      }
    }
    FinishBlock<kType, MR>(part, t, sums, nb, acc);
  } else {
    const DecodedGroupBlock* one[] = {&t};
    float* const acc_one[] = {acc};
    DecodedGroupsRows<kType, MR, 1>(one, x, ldx, sums, nb, acc_one);
  }
}

// DecodedBlockRows (one group) or DecodedGroupsRows (G groups) for
// 1 <= rows <= MR.
template <DType kType, int G, int MR>
void DecodedRowsUpTo(int64_t rows, const DecodedGroupBlock* const* t, const float* x, int64_t ldx,
                     const float* sums, int64_t nb, float* const* acc) {
  if constexpr (MR > 1) {
    if (rows < MR) return DecodedRowsUpTo<kType, G, MR - 1>(rows, t, x, ldx, sums, nb, acc);
  }
  if constexpr (G == 1) {
    DecodedBlockRows<kType, MR>(*t[0], x, ldx, sums, nb, acc[0]);
  } else {
    DecodedGroupsRows<kType, MR, G>(t, x, ldx, sums, nb, acc);
  }
}

// Fewest rows of X for which decoding each group-block once into memory beats
// decoding it in registers per kMaxGroupRows rows (measured with AVX2 on Zen
// 3: at 2 rows the register kernel is ~1.3x faster for Q4, even for Q8_0; at
// 3 the decoded path is ~1.2x (Q4) to 1.6x (Q8_0) faster; AVX-512 unmeasured).
constexpr int64_t kDecodedPathMinRows = 3;

// G consecutive 16-row groups, from row n, against the M rows of X: each
// group-block is decoded once, then all M rows go through the G of them,
// kTileRows or fewer at a time, their accumulators (acc, M x G) waiting in
// memory between blocks.
struct alignas(64) RowAccumulators {
  float v[kR];
};
template <DType kType, int G>
void DecodedGroups(const float* x, int64_t ldx, const uint8_t* w, float* y, int64_t ldy, int64_t M,
                   int64_t nb, const float* sums, int64_t n, RowAccumulators* acc) {
  const Layout L = LayoutOf(kType);
  // ceil(M / kTileRows) passes over each block, of as equal a number of rows
  // as can be: a pass of few rows has too few independent FMA chains.
  const int64_t passes = (M + kTileRows - 1) / kTileRows;
  DecodedGroupBlock tiles[G];
  const DecodedGroupBlock* t[G];
  for (int g = 0; g < G; ++g) t[g] = &tiles[g];
  std::fill(acc, acc + G * M, RowAccumulators{});
  for (int64_t b = 0; b < nb; ++b) {
    for (int g = 0; g < G; ++g) {
      DecodeGroupBlockTile<kType>(w + ((n / kR + g) * nb + b) * L.group_block_bytes, &tiles[g]);
    }
    for (int64_t p = 0, m = 0; p < passes; ++p) {
      const int64_t rows = M / passes + (p < M % passes ? 1 : 0);
      float* a[G];
      for (int g = 0; g < G; ++g) a[g] = acc[g * M + m].v;
      DecodedRowsUpTo<kType, G, kTileRows>(rows, t, x + m * ldx + b * kQK, ldx, sums + m * nb + b, nb, a);
      m += rows;
    }
  }
  for (int g = 0; g < G; ++g)
    for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * ldy + n + g * kR, acc[g * M + m].v, sizeof(acc[0].v));
}

// Every 16-row group of [n0, n1) against the M rows of X, kGroupsPerPass
// groups at a time from kGroupsPerPassMinRows rows (the last alone when
// their number is odd), otherwise one.
template <DType kType>
void DecodedPath(const float* x, int64_t ldx, const uint8_t* w, float* y, int64_t ldy, int64_t M,
                 int64_t nb, const float* sums, int64_t n0, int64_t n1) {
  thread_local std::vector<RowAccumulators> acc;
  if (static_cast<int64_t>(acc.size()) < kGroupsPerPass * M) acc.resize(kGroupsPerPass * M);
  RowAccumulators* a = acc.data();
  int64_t n = n0;
  if constexpr (kGroupsPerPass > 1) {
    for (; M >= kGroupsPerPassMinRows && n + kGroupsPerPass * kR <= n1; n += kGroupsPerPass * kR) {
      DecodedGroups<kType, kGroupsPerPass>(x, ldx, w, y, ldy, M, nb, sums, n, a);
    }
  }
  for (; n < n1; n += kR) DecodedGroups<kType, 1>(x, ldx, w, y, ldy, M, nb, sums, n, a);
}

// Every 16-row group of [n0, n1) against X; the Q4 kernels take each block's
// sum of x from `sums`. Few rows: kMaxGroupRows rows of X per GroupKernel
// call; more: DecodedPath.
template <DType kType>
void RegisterPath(const float* x, int64_t ldx, const uint8_t* w, float* y, int64_t ldy, int64_t M,
                  int64_t K, int64_t n0, int64_t n1) {
  const Layout L = LayoutOf(kType);
  const int64_t nb = K / kQK;
  thread_local std::vector<float> sums;
  if (static_cast<int64_t>(sums.size()) < M * nb) sums.resize(M * nb);
  if constexpr (kType != DType::kQ8_0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b = 0; b < nb; ++b) sums[m * nb + b] = BlockSum(x + m * ldx + b * kQK);
  }
  if (M >= kDecodedPathMinRows) {
    return DecodedPath<kType>(x, ldx, w, y, ldy, M, nb, sums.data(), n0, n1);
  }
  for (int64_t n = n0; n < n1; n += kR) {
    const uint8_t* group = w + (n / kR) * nb * L.group_block_bytes;
    int64_t m = 0;
    for (; m + kMaxGroupRows <= M; m += kMaxGroupRows) {
      GroupKernel<kType, kMaxGroupRows>(x + m * ldx, ldx, group, nb, sums.data() + m * nb,
                                        y + m * ldy + n, ldy);
    }
    const float* xs = x + m * ldx;
    const float* ss = sums.data() + m * nb;
    float* ys = y + m * ldy + n;
    switch (M - m) {  // fewer than kMaxGroupRows rows left
      case 3:
        if constexpr (kMaxGroupRows > 3) GroupKernel<kType, 3>(xs, ldx, group, nb, ss, ys, ldy);
        break;
      case 2:
        if constexpr (kMaxGroupRows > 2) GroupKernel<kType, 2>(xs, ldx, group, nb, ss, ys, ldy);
        break;
      case 1: GroupKernel<kType, 1>(xs, ldx, group, nb, ss, ys, ldy); break;
      default: break;
    }
  }
}

#endif


}  // namespace

bool CanRepack(DType type, int64_t N, int64_t K) {
  return LayoutOf(type).group_block_bytes != 0 && N % kR == 0 && K % kQK == 0 && N > 0 && K > 0;
}

int64_t RepackedBytes(DType type, int64_t N, int64_t K) {
  return N / kR * (K / kQK) * LayoutOf(type).group_block_bytes;
}

void RepackRows(DType type, const uint8_t* src, int64_t row_bytes, int64_t N, int64_t K, uint8_t* dst) {
  const Layout L = LayoutOf(type);
  const int64_t nb = K / kQK;
  const int64_t qbytes = type == DType::kQ8_0 ? kQK : kQK / 2;  // per stored block
  const int64_t qstart = L.stored_block_bytes - qbytes;          // after d (and m)
  for (int64_t g = 0; g < N / kR; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* gb = dst + (g * nb + b) * L.group_block_bytes;
      for (int64_t r = 0; r < kR; ++r) {
        const uint8_t* blk = src + (g * kR + r) * row_bytes + b * L.stored_block_bytes;
        std::memcpy(gb + 2 * r, blk, 2);  // d
        if (type == DType::kQ4_1) std::memcpy(gb + L.m_offset + 2 * r, blk + 2, 2);
        for (int64_t k = 0; k < qbytes; ++k) gb[L.q_offset + k * kR + r] = blk[qstart + k];
      }
    }
  }
}

void RepackedMatMulF32(DType type, const float* x, int64_t ldx, const uint8_t* w, float* y,
                       int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1) {
#if defined(TS_REPACKED_REGISTER_PATH)
  switch (type) {
    case DType::kQ8_0: return RegisterPath<DType::kQ8_0>(x, ldx, w, y, ldy, M, K, n0, n1);
    case DType::kQ4_0: return RegisterPath<DType::kQ4_0>(x, ldx, w, y, ldy, M, K, n0, n1);
    case DType::kQ4_1: return RegisterPath<DType::kQ4_1>(x, ldx, w, y, ldy, M, K, n0, n1);
    default: return;
  }
#endif
  TiledPath(type, x, ldx, w, y, ldy, M, K, n0, n1);
}

void RepackedRowF32(DType type, const uint8_t* w, int64_t K, int64_t r, float* out) {
  const Layout L = LayoutOf(type);
  const int64_t nb = K / kQK;
  float tile[kR * kQK];
  const uint8_t* group = w + (r / kR) * nb * L.group_block_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    DecodeGroupBlock(type, group + b * L.group_block_bytes, L, tile, kQK, 0);
    std::memcpy(out + b * kQK, tile + (r % kR) * kQK, sizeof(float) * kQK);
  }
}

}  // namespace tierserve::cpu
