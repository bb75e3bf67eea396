#include "kernels/cpu/fourbit_matmul.h"

// GCC 12's AVX-512 headers build `undefined` vectors by self-initialisation,
// which -Wuninitialized reports once inlined here (a known header issue).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "kernels/common/half.h"
#include "kernels/cpu/target.h"

namespace tierserve::cpu {
namespace {

constexpr int kMaxTileRows = 4;  // rows of X sharing each decoded weight
constexpr int64_t kPanel = 2048;  // columns of X rounded at a time (fp16/bf16)
constexpr int64_t kNestedBlock = 256;  // absmax entries per absmax2 entry

// GCC contracts a*b+c into an FMA across statements (-ffp-contract=fast is
// its default in C++); a product passed through here stays rounded.
inline float Rounded(float v) {
  asm("" : "+x"(v));
  return v;
}

float BlockAbsmax(const FourBitWeight& w, int64_t b) {
  if (w.absmax != nullptr) return w.absmax[b];
  return Rounded(w.code2[w.qabsmax[b]] * w.absmax2[b / kNestedBlock]) + w.offset;
}

template <ComputeDType kCd>
inline float RoundTo(float v) {
  if constexpr (kCd == ComputeDType::kFp16) return F16ToF32(F32ToF16(v));
  if constexpr (kCd == ComputeDType::kBf16) return BF16ToF32(F32ToBF16(v));
  return v;
}

inline int Nibble(const uint8_t* packed, int64_t f) {
  const uint8_t b = packed[f >> 1];
  return (f & 1) ? (b & 0x0F) : (b >> 4);
}

// Where a kernel reads X: mr rows of the panel [k0, k1), ld apart, already
// rounded to the compute dtype (fp32 values, or bf16 words for the
// AVX512_BF16 kernel).
struct XPanel {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int64_t ld = 0;
  int mr = 0;
  int64_t k0 = 0, k1 = 0;
};

// Y rows of one tile: y[i * ld + n]; the first panel stores, later ones add.
struct YOut {
  float* y = nullptr;
  int64_t ld = 0;
  bool accumulate = false;
  void Put(int i, int64_t n, float v) const {
    float* p = y + i * ld + n;
    *p = accumulate ? *p + v : v;
  }
};

// ---------------------------------------------------------------------------
// Portable: any K and blocksize. Each output sums its terms into 8 partial
// sums by (k - k0) % 8, reduced pairwise at the end of the panel.

template <ComputeDType kCd>
void FillPortable(const float* x, int64_t ldx, int mr, int64_t len, float* out, int64_t ldo) {
  for (int i = 0; i < mr; ++i)
    for (int64_t k = 0; k < len; ++k) out[i * ldo + k] = RoundTo<kCd>(x[i * ldx + k]);
}

inline float Reduce8(const float* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <ComputeDType kCd>
void GeneralRows(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  constexpr int64_t kChunk = 64;
  float tab[16];
  float wv[kChunk];
  for (int64_t n = n0; n < n1; ++n) {
    float acc[kMaxTileRows][8] = {};
    const int64_t row = n * K;
    int64_t f = row + xp.k0;
    const int64_t fend = row + xp.k1;
    while (f < fend) {
      const int64_t b = f / bs;
      const int64_t seg_end = std::min(fend, (b + 1) * bs);
      const float a = BlockAbsmax(w, b);
      for (int j = 0; j < 16; ++j) tab[j] = RoundTo<kCd>(w.code[j] * a);
      while (f < seg_end) {
        const int64_t len = std::min(kChunk, seg_end - f);
        for (int64_t e = 0; e < len; ++e) wv[e] = tab[Nibble(w.packed, f + e)];
        const int64_t kx = f - row - xp.k0;
        for (int i = 0; i < xp.mr; ++i) {
          const float* xr = xp.f32 + i * xp.ld + kx;
          for (int64_t e = 0; e < len; ++e) {
            acc[i][(kx + e) & 7] += xr[e] * wv[e];
          }
        }
        f += len;
      }
    }
    for (int i = 0; i < xp.mr; ++i) out.Put(i, n, Reduce8(acc[i]));
  }
}

// ---------------------------------------------------------------------------
// AVX2 + FMA. fp16 compute: a block's 16 weights round_fp16(code * absmax)
// sit in two registers; 8 nibbles (4 bytes) become 8 weights, in element
// order, with one broadcast, two shifts, two vpermps (low/high half of the
// table) and a blend on the nibble's bit 3. fp32 and bf16 use the byte-plane
// kernels below, which take fewer operations.
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c")

template <ComputeDType kCd>
inline __m256 RoundVec(__m256 v) {
  if constexpr (kCd == ComputeDType::kFp16) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else if constexpr (kCd == ComputeDType::kBf16) {
    // As F32ToBF16: add 0x7FFF plus the kept lsb, truncate; NaN stays NaN.
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb);
    const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, bias), hi);
    const __m256i q = _mm256_or_si256(_mm256_and_si256(u, hi), _mm256_set1_epi32(0x00400000));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q),
                            _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  } else {
    return v;
  }
}

template <ComputeDType kCd>
void FillAvx2(const float* x, int64_t ldx, int mr, int64_t len, float* out, int64_t ldo) {
  for (int i = 0; i < mr; ++i) {
    int64_t k = 0;
    for (; k + 8 <= len; k += 8)
      _mm256_storeu_ps(out + i * ldo + k, RoundVec<kCd>(_mm256_loadu_ps(x + i * ldx + k)));
    for (; k < len; ++k) out[i * ldo + k] = RoundTo<kCd>(x[i * ldx + k]);
  }
}

inline float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Elements 0..7 of the 4 bytes at p: element 2i is bits 8i+4..8i+7, element
// 2i+1 bits 8i..8i+3. vpermps reads an index's low 3 bits; blendv its bit 31.
inline __m256 Lookup8(const uint8_t* p, __m256 lo, __m256 hi) {
  const __m256i to_index = _mm256_setr_epi32(4, 0, 12, 8, 20, 16, 28, 24);
  const __m256i to_sign = _mm256_setr_epi32(24, 28, 16, 20, 8, 12, 0, 4);
  uint32_t u;
  std::memcpy(&u, p, sizeof u);
  const __m256i bc = _mm256_set1_epi32(static_cast<int>(u));
  const __m256i idx = _mm256_srlv_epi32(bc, to_index);
  const __m256 sel = _mm256_castsi256_ps(_mm256_sllv_epi32(bc, to_sign));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx), sel);
}

// MR rows of X against W rows [n, n + NR), over the panel's whole blocks.
template <ComputeDType kCd, int MR, int NR>
void BlockTileAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n, const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = K / bs;
  const __m256 code_lo = _mm256_loadu_ps(w.code);
  const __m256 code_hi = _mm256_loadu_ps(w.code + 8);
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t kb_end = xp.k1 / bs;
  float absmax[NR];
  for (int j = 0; j < NR; ++j) absmax[j] = BlockAbsmax(w, (n + j) * blocks_per_row + xp.k0 / bs);
  for (int64_t kb = xp.k0 / bs; kb < kb_end; ++kb) {
    __m256 lo[NR], hi[NR];
    const uint8_t* p[NR];
    for (int j = 0; j < NR; ++j) {
      const __m256 a = _mm256_set1_ps(absmax[j]);
      lo[j] = RoundVec<kCd>(_mm256_mul_ps(code_lo, a));
      hi[j] = RoundVec<kCd>(_mm256_mul_ps(code_hi, a));
      p[j] = w.packed + ((n + j) * K + kb * bs) / 2;
      // The next block's scale, a chain of dependent loads when
      // double-quantized, is fetched while this block computes.
      if (kb + 1 < kb_end) absmax[j] = BlockAbsmax(w, (n + j) * blocks_per_row + kb + 1);
    }
    const float* x = xp.f32 + (kb * bs - xp.k0);
    for (int64_t s = 0; s < bs; s += 8) {
      for (int j = 0; j < NR; ++j) {
        const __m256 wv = Lookup8(p[j] + s / 2, lo[j], hi[j]);
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i * xp.ld + s), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out.Put(i, n + j, Sum8(acc[i][j]));
}

template <ComputeDType kCd, int MR>
void BlockRowsAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) BlockTileAvx2<kCd, MR, NR>(w, xp, n, out);
  for (; n < n1; ++n) BlockTileAvx2<kCd, MR, 1>(w, xp, n, out);
}

template <ComputeDType kCd>
void BlockKernelAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return BlockRowsAvx2<kCd, 1>(w, xp, n0, n1, out);
    case 2: return BlockRowsAvx2<kCd, 2>(w, xp, n0, n1, out);
    case 3: return BlockRowsAvx2<kCd, 3>(w, xp, n0, n1, out);
    default: return BlockRowsAvx2<kCd, 4>(w, xp, n0, n1, out);
  }
}

// Byte-plane kernels for fp32 and bf16 compute. vpshufb is a 16-entry byte
// table lookup, so a table of 16 floats becomes 4 byte planes (2 for bf16,
// whose low bytes are zero): 32 weights cost 2 ops of indices, one lookup
// per plane and 4-8 unpacks, against 20 ops for vpermps pairs.
//  - fp32: the table is the code itself, the same for every block; each
//    block's partial sums are multiplied by absmax once:
//      y = sum_b absmax_b * (sum_{k in b} x_k * code[nibble_k]),
//    the same sum as over x_k * (code * absmax), rounded differently.
//  - bf16: the table is round_bf16(code * absmax) per block (its 2 high
//    byte planes), as the contract has it.
// The unpacks leave weights in the order [0 2 4 6 1 3 5 7] within each 8
// (even elements, from high nibbles, in the low 128-bit lane), so X is
// stored permuted the same way (FillPermutedAvx2).
constexpr int kPlaneOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Byte planes 0..3 of code[0..15], each in both 128-bit lanes.
inline void CodePlanes(const float* code, __m256i* planes) {
  const __m128i gather = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m128i c[4];
  for (int i = 0; i < 4; ++i) {
    c[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code + 4 * i)), gather);
  }
  // c[i] dword p = byte p of code[4i .. 4i+3]; transpose the 4x4 dwords.
  const __m128i t0 = _mm_unpacklo_epi32(c[0], c[1]);
  const __m128i t1 = _mm_unpacklo_epi32(c[2], c[3]);
  const __m128i t2 = _mm_unpackhi_epi32(c[0], c[1]);
  const __m128i t3 = _mm_unpackhi_epi32(c[2], c[3]);
  planes[0] = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t0, t1));
  planes[1] = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t0, t1));
  planes[2] = _mm256_broadcastsi128_si256(_mm_unpacklo_epi64(t2, t3));
  planes[3] = _mm256_broadcastsi128_si256(_mm_unpackhi_epi64(t2, t3));
}

// Byte planes 2 and 3 of round_bf16(code[0..15] * a).
inline void Bf16Planes(__m256 code_lo, __m256 code_hi, float a, __m256i* p2, __m256i* p3) {
  const __m256 av = _mm256_set1_ps(a);
  const __m256i lo = _mm256_castps_si256(RoundVec<ComputeDType::kBf16>(_mm256_mul_ps(code_lo, av)));
  const __m256i hi = _mm256_castps_si256(RoundVec<ComputeDType::kBf16>(_mm256_mul_ps(code_hi, av)));
  // Per 128-bit lane (4 entries): dword 0 = their bytes 2, dword 1 = bytes 3.
  const __m256i gather = _mm256_setr_epi8(2, 6, 10, 14, 3, 7, 11, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                          2, 6, 10, 14, 3, 7, 11, 15, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i u = _mm256_unpacklo_epi32(_mm256_shuffle_epi8(lo, gather), _mm256_shuffle_epi8(hi, gather));
  // u = [b2(0-3) b2(8-11) b3(0-3) b3(8-11) | b2(4-7) b2(12-15) b3(4-7) b3(12-15)]
  const __m256i v = _mm256_permutevar8x32_epi32(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  *p2 = _mm256_permute2x128_si256(v, v, 0x00);
  *p3 = _mm256_permute2x128_si256(v, v, 0x11);
}

// X rounded to the compute dtype and permuted as the plane kernels read it.
template <ComputeDType kCd>
void FillPermutedAvx2(const float* x, int64_t ldx, int mr, int64_t len, float* out, int64_t ldo) {
  const __m256i order = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kPlaneOrder));
  for (int i = 0; i < mr; ++i) {
    for (int64_t k = 0; k < len; k += 8) {  // len % 32 == 0 on this path
      const __m256 v = RoundVec<kCd>(_mm256_loadu_ps(x + i * ldx + k));
      _mm256_storeu_ps(out + i * ldo + k, _mm256_permutevar8x32_ps(v, order));
    }
  }
}

template <ComputeDType kCd, int MR, int NR>
void PlanesTileAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n, const YOut& out) {
  static_assert(kCd != ComputeDType::kFp16);
  constexpr bool kFp32 = kCd == ComputeDType::kFp32;
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = K / bs;
  __m256i code_planes[4];
  if constexpr (kFp32) CodePlanes(w.code, code_planes);
  const __m256 code_lo = _mm256_loadu_ps(w.code);
  const __m256 code_hi = _mm256_loadu_ps(w.code + 8);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i lane_shift = _mm256_setr_epi32(4, 4, 4, 4, 0, 0, 0, 0);
  const __m256i zero = _mm256_setzero_si256();
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t kb_end = xp.k1 / bs;
  float absmax[NR];
  for (int j = 0; j < NR; ++j) absmax[j] = BlockAbsmax(w, (n + j) * blocks_per_row + xp.k0 / bs);
  for (int64_t kb = xp.k0 / bs; kb < kb_end; ++kb) {
    __m256 part[MR][NR];
    __m256i p2[NR], p3[NR];
    for (int j = 0; j < NR; ++j) {
      if constexpr (kFp32) {
        for (int i = 0; i < MR; ++i) part[i][j] = _mm256_setzero_ps();
      } else {
        Bf16Planes(code_lo, code_hi, absmax[j], &p2[j], &p3[j]);
        // The next block's scale, a chain of dependent loads when
        // double-quantized, is fetched while this block computes.
        if (kb + 1 < kb_end) absmax[j] = BlockAbsmax(w, (n + j) * blocks_per_row + kb + 1);
      }
    }
    const float* x = xp.f32 + (kb * bs - xp.k0);
    for (int64_t s = 0; s < bs; s += 32) {
      for (int j = 0; j < NR; ++j) {
        const uint8_t* p = w.packed + ((n + j) * K + kb * bs + s) / 2;
        // Low lane: high nibbles (elements 0, 2, ..); high lane: low nibbles.
        const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(bytes, lane_shift), nibble);
        __m256 wv[4];
        if constexpr (kFp32) {
          const __m256i b0 = _mm256_shuffle_epi8(code_planes[0], idx);
          const __m256i b1 = _mm256_shuffle_epi8(code_planes[1], idx);
          const __m256i b2 = _mm256_shuffle_epi8(code_planes[2], idx);
          const __m256i b3 = _mm256_shuffle_epi8(code_planes[3], idx);
          const __m256i w01l = _mm256_unpacklo_epi8(b0, b1);
          const __m256i w01h = _mm256_unpackhi_epi8(b0, b1);
          const __m256i w23l = _mm256_unpacklo_epi8(b2, b3);
          const __m256i w23h = _mm256_unpackhi_epi8(b2, b3);
          wv[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(w01l, w23l));
          wv[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(w01l, w23l));
          wv[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(w01h, w23h));
          wv[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(w01h, w23h));
        } else {
          const __m256i b2 = _mm256_shuffle_epi8(p2[j], idx);
          const __m256i b3 = _mm256_shuffle_epi8(p3[j], idx);
          const __m256i wl = _mm256_unpacklo_epi8(b2, b3);
          const __m256i wh = _mm256_unpackhi_epi8(b2, b3);
          wv[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, wl));
          wv[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, wl));
          wv[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, wh));
          wv[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, wh));
        }
        for (int i = 0; i < MR; ++i) {
          const float* xi = x + i * xp.ld + s;
          __m256& a = kFp32 ? part[i][j] : acc[i][j];
          for (int q = 0; q < 4; ++q) a = _mm256_fmadd_ps(wv[q], _mm256_loadu_ps(xi + 8 * q), a);
        }
      }
    }
    if constexpr (kFp32) {
      for (int j = 0; j < NR; ++j) {
        const __m256 a = _mm256_set1_ps(absmax[j]);
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(part[i][j], a, acc[i][j]);
        if (kb + 1 < kb_end) absmax[j] = BlockAbsmax(w, (n + j) * blocks_per_row + kb + 1);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out.Put(i, n + j, Sum8(acc[i][j]));
}

template <ComputeDType kCd, int MR>
void PlanesRowsAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) PlanesTileAvx2<kCd, MR, NR>(w, xp, n, out);
  for (; n < n1; ++n) PlanesTileAvx2<kCd, MR, 1>(w, xp, n, out);
}

template <ComputeDType kCd>
void PlanesKernelAvx2(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return PlanesRowsAvx2<kCd, 1>(w, xp, n0, n1, out);
    case 2: return PlanesRowsAvx2<kCd, 2>(w, xp, n0, n1, out);
    case 3: return PlanesRowsAvx2<kCd, 3>(w, xp, n0, n1, out);
    default: return PlanesRowsAvx2<kCd, 4>(w, xp, n0, n1, out);
  }
}

TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------
// AVX-512 block kernels. The 16-entry table fits one register: 16 nibbles
// (8 bytes, each byte duplicated and shifted by 4 in even lanes) index it
// with one vpermps. With AVX512_BF16 and bf16 compute, weights are looked up
// as bf16 words (vpermw) in element order, two per 32-bit lane, and
// vdpbf16ps multiplies them by X's bf16 pairs, accumulating in fp32 (its
// products are exact; it flushes denormals).
TIERSERVE_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl")

template <ComputeDType kCd>
inline __m512 RoundVec512(__m512 v) {
  if constexpr (kCd == ComputeDType::kFp16) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else if constexpr (kCd == ComputeDType::kBf16) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb);
    const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    const __m512i r = _mm512_and_si512(_mm512_add_epi32(u, bias), hi);
    const __m512i q = _mm512_or_si512(_mm512_and_si512(u, hi), _mm512_set1_epi32(0x00400000));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(nan, r, q));
  } else {
    return v;
  }
}

inline float Sum16(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
  __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  t = _mm_add_ps(t, _mm_movehl_ps(t, t));
  t = _mm_add_ss(t, _mm_movehdup_ps(t));
  return _mm_cvtss_f32(t);
}

template <ComputeDType kCd, int MR, int NR>
void BlockTileAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n, const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = K / bs;
  const __m512 code = _mm512_loadu_ps(w.code);
  // Lane 2i: the byte's high nibble (element 2i); lane 2i+1: its low nibble.
  const __m512i shifts = _mm512_set_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t kb = xp.k0 / bs; kb < xp.k1 / bs; ++kb) {
    __m512 tab[NR];
    const uint8_t* p[NR];
    for (int j = 0; j < NR; ++j) {
      tab[j] = RoundVec512<kCd>(
          _mm512_mul_ps(code, _mm512_set1_ps(BlockAbsmax(w, (n + j) * blocks_per_row + kb))));
      p[j] = w.packed + ((n + j) * K + kb * bs) / 2;
    }
    const float* x = xp.f32 + (kb * bs - xp.k0);
    for (int64_t s = 0; s < bs; s += 16) {
      for (int j = 0; j < NR; ++j) {
        const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[j] + s / 2));
        const __m512i d = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(v, v));
        const __m512 wv = _mm512_permutexvar_ps(_mm512_srlv_epi32(d, shifts), tab[j]);
        for (int i = 0; i < MR; ++i)
          acc[i][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + i * xp.ld + s), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out.Put(i, n + j, Sum16(acc[i][j]));
}

template <ComputeDType kCd, int MR>
void BlockRowsAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) BlockTileAvx512<kCd, MR, NR>(w, xp, n, out);
  for (; n < n1; ++n) BlockTileAvx512<kCd, MR, 1>(w, xp, n, out);
}

template <ComputeDType kCd>
void BlockKernelAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return BlockRowsAvx512<kCd, 1>(w, xp, n0, n1, out);
    case 2: return BlockRowsAvx512<kCd, 2>(w, xp, n0, n1, out);
    case 3: return BlockRowsAvx512<kCd, 3>(w, xp, n0, n1, out);
    default: return BlockRowsAvx512<kCd, 4>(w, xp, n0, n1, out);
  }
}

// fp32 compute, blocksize a multiple of 64. vpermps
// reads only an index's low 4 bits, so one 64-byte load of packed weights
// (128 elements, 8 per 32-bit lane) gives 8 index vectors by shifts alone:
// lane i, shift kNibbleShift[t] holds element 8i + t of the group (bitsandbytes'
// order: element 2j in the high nibble of byte j). X is stored transposed
// the same way (FillNibbleOrder512), zero past the panel, so the lookups
// multiply in place: 1 shift, 1 vpermps and 1 FMA per 16 weights, against 5
// operations of byte unpacking in BlockTileAvx512 (1.2-1.5x faster on Zen 4,
// where a 512-bit vpermps issues once per cycle: that is now the bound, at
// ~30 G weights/s per core). Lanes 0-7 hold the
// group's first 64 elements and lanes 8-15 the next 64, each inside one
// block, so each block's sum is multiplied by its absmax once, per lane:
//   y = sum_b absmax_b * (sum_{k in b} x_k * code[nibble_k])
// as the AVX2 plane kernels sum it.
constexpr int64_t kNibbleGroup = 128;
constexpr int kNibbleShift[8] = {4, 0, 12, 8, 20, 16, 28, 24};

bool UsesNibbleOrder512(const FourBitWeight& w) { return w.blocksize % 64 == 0; }

// x[m, k0 + g*128 + 8i + t] -> out[m * ldo + g*128 + 16t + i]; a last half
// group (64 columns) leaves lanes 8-15 zero.
void FillNibbleOrder512(const float* x, int64_t ldx, int mr, int64_t len, float* out, int64_t ldo) {
  for (int m = 0; m < mr; ++m) {
    const float* xr = x + m * ldx;
    float* o = out + m * ldo;
    for (int64_t g = 0; g < len; g += kNibbleGroup) {
      const int64_t lanes = std::min<int64_t>(16, (len - g) / 8);
      for (int t = 0; t < 8; ++t) {
        for (int64_t i = 0; i < 16; ++i) o[g + 16 * t + i] = i < lanes ? xr[g + 8 * i + t] : 0.0f;
      }
    }
  }
}

// code2[q] for 16 indices q < 256, code2 in 16 registers: vpermt2ps picks
// among 32 entries by an index's low 5 bits, blends pick by the high 3 (on
// Zen 5, 13% quicker per nf4 + double-quant matmul than a gather).
struct Code2Table {
  __m512 r[16];
  explicit Code2Table(const float* code2) {
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(code2 + 16 * i);
  }
  __m512 operator()(__m512i q) const {
    __m512 p[8];
    for (int i = 0; i < 8; ++i) p[i] = _mm512_permutex2var_ps(r[2 * i], q, r[2 * i + 1]);
    const __mmask16 b5 = _mm512_test_epi32_mask(q, _mm512_set1_epi32(32));
    const __mmask16 b6 = _mm512_test_epi32_mask(q, _mm512_set1_epi32(64));
    const __mmask16 b7 = _mm512_test_epi32_mask(q, _mm512_set1_epi32(128));
    for (int i = 0; i < 4; ++i) p[i] = _mm512_mask_blend_ps(b5, p[2 * i], p[2 * i + 1]);
    for (int i = 0; i < 2; ++i) p[i] = _mm512_mask_blend_ps(b6, p[2 * i], p[2 * i + 1]);
    return _mm512_mask_blend_ps(b7, p[0], p[1]);
  }
};

// BlockAbsmax(w, b + c) for c < count into out, for double-quantized absmax:
// 16 blocks at a time, with the same two roundings.
void DecodeAbsmax512(const FourBitWeight& w, const Code2Table& code2, int64_t b, int64_t count,
                     float* out) {
  const __m512 offset = _mm512_set1_ps(w.offset);
  for (int64_t c = 0; c < count; c += 16) {
    const __mmask16 m = count - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (count - c)) - 1);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w.qabsmax + b + c));
    const __m512 c2 = code2(q);
    // absmax2 of each block: the 16 blocks span one nested block, or two.
    const int64_t first = (b + c) / kNestedBlock;
    const int64_t last = (b + std::min(count - 1, c + 15)) / kNestedBlock;
    __m512 a2 = _mm512_set1_ps(w.absmax2[first]);
    if (last != first) {
      const int split = static_cast<int>(last * kNestedBlock - (b + c));  // first lane of `last`
      a2 = _mm512_mask_blend_ps(static_cast<__mmask16>(0xFFFFu << split), a2,
                                _mm512_set1_ps(w.absmax2[last]));
    }
    __m512 prod = _mm512_mul_ps(c2, a2);
    asm("" : "+v"(prod));  // rounded before the add, never fused
    _mm512_mask_storeu_ps(out + c, m, _mm512_add_ps(prod, offset));
  }
}

// Where a tile finds its rows' absmax for the panel: row j's block i (of
// the panel) at am[j * ld + i].
struct PanelAbsmax {
  const float* am;
  int64_t ld;
};

template <int MR, int NR>
void NibbleTileAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n, const PanelAbsmax& pa,
                      const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const __m512 code = _mm512_loadu_ps(w.code);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t kg = xp.k0; kg < xp.k1; kg += kNibbleGroup) {
    const bool half = xp.k1 - kg < kNibbleGroup;  // 64 columns left
    __m512i v[NR];
    __m512 scale[NR];
    for (int j = 0; j < NR; ++j) {
      const uint8_t* p = w.packed + ((n + j) * K + kg) / 2;
      v[j] = half ? _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
                  : _mm512_loadu_si512(p);
      const float* am = pa.am + j * pa.ld;
      const float a0 = am[(kg - xp.k0) / bs];
      const float a1 = half ? 0.0f : am[(kg + 64 - xp.k0) / bs];
      scale[j] = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a0), _mm512_set1_ps(a1));
    }
    const float* x = xp.f32 + (kg - xp.k0);
    __m512 part[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) part[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < 8; ++t) {
      for (int j = 0; j < NR; ++j) {
        const __m512 wv = _mm512_permutexvar_ps(_mm512_srli_epi32(v[j], kNibbleShift[t]), code);
        for (int i = 0; i < MR; ++i)
          part[i][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + i * xp.ld + 16 * t), part[i][j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(part[i][j], scale[j], acc[i][j]);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out.Put(i, n + j, Sum16(acc[i][j]));
}

// Rows are taken kAbsmaxRows at a time; for double quant, their absmax for
// the panel is decoded first into a stack buffer (at most 64 x 32 floats).
constexpr int64_t kAbsmaxRows = 64;

// The panel's absmax of W rows [c0, c1): read in place, or decoded into
// `decoded` (kAbsmaxRows * kPanel / 64 floats) when double-quantized.
PanelAbsmax PanelAbsmaxFor(const FourBitWeight& w, const XPanel& xp, const Code2Table* code2,
                           int64_t c0, int64_t c1, float* decoded) {
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = w.cols / bs;
  const int64_t panel_blocks = (xp.k1 - xp.k0) / bs;
  if (w.absmax != nullptr) return PanelAbsmax{w.absmax + c0 * blocks_per_row + xp.k0 / bs, blocks_per_row};
  if (panel_blocks == blocks_per_row) {  // the rows' blocks are consecutive
    DecodeAbsmax512(w, *code2, c0 * blocks_per_row, (c1 - c0) * blocks_per_row, decoded);
  } else {
    for (int64_t r = c0; r < c1; ++r) {
      DecodeAbsmax512(w, *code2, r * blocks_per_row + xp.k0 / bs, panel_blocks,
                      decoded + (r - c0) * panel_blocks);
    }
  }
  return PanelAbsmax{decoded, panel_blocks};
}

// Rows [n0, n1) of W, kAbsmaxRows at a time: tile_rows(c0, c1, pa) runs the
// tiles of rows [c0, c1) with their absmax for the panel in `pa`.
template <typename TileRows>
void NibbleRows(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const TileRows& tile_rows) {
  alignas(64) float decoded[kAbsmaxRows * (kPanel / 64)];
  std::optional<Code2Table> code2;
  if (w.absmax == nullptr) code2.emplace(w.code2);
  for (int64_t c0 = n0; c0 < n1; c0 += kAbsmaxRows) {
    const int64_t c1 = std::min(n1, c0 + kAbsmaxRows);
    tile_rows(c0, c1, PanelAbsmaxFor(w, xp, code2 ? &*code2 : nullptr, c0, c1, decoded));
  }
}

template <int MR>
void NibbleRowsAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  // One row of W per tile at one row of X: decode (SmolLM2, bench_quantized,
  // 3 same-run pairs) +19 to +42% for nf4 + double quant and +8 to +19% for
  // fp4 on 1 thread against 4 rows per tile (2 rows: between the two; 8: half
  // the speed). A row's arithmetic does not depend on the tile, so neither do
  // its bits.
  constexpr int NR = MR == 1 ? 1 : 2;
  NibbleRows(w, xp, n0, n1, [&](int64_t c0, int64_t c1, const PanelAbsmax& pa) {
    int64_t n = c0;
    for (; n + NR <= c1; n += NR) {
      NibbleTileAvx512<MR, NR>(w, xp, n, PanelAbsmax{pa.am + (n - c0) * pa.ld, pa.ld}, out);
    }
    for (; n < c1; ++n) {
      NibbleTileAvx512<MR, 1>(w, xp, n, PanelAbsmax{pa.am + (n - c0) * pa.ld, pa.ld}, out);
    }
  });
}

void NibbleKernelAvx512(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return NibbleRowsAvx512<1>(w, xp, n0, n1, out);
    case 2: return NibbleRowsAvx512<2>(w, xp, n0, n1, out);
    case 3: return NibbleRowsAvx512<3>(w, xp, n0, n1, out);
    default: return NibbleRowsAvx512<4>(w, xp, n0, n1, out);
  }
}

// X rounded to bf16 words, as F32ToBF16.
void FillBf16Words(const float* x, int64_t ldx, int mr, int64_t len, uint16_t* out, int64_t ldo) {
  for (int i = 0; i < mr; ++i) {
    int64_t k = 0;
    for (; k + 16 <= len; k += 16) {
      const __m512 r = RoundVec512<ComputeDType::kBf16>(_mm512_loadu_ps(x + i * ldx + k));
      const __m256i words = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(r), 16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * ldo + k), words);
    }
    for (; k < len; ++k) out[i * ldo + k] = F32ToBF16(x[i * ldx + k]);
  }
}

TIERSERVE_TARGET_END

TIERSERVE_TARGET_BEGIN("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512bf16")

// A register of 32 bf16 words, as vdpbf16ps takes it (a vector cast: no instruction).
inline __m512bh AsBf16Pairs(__m512i v) { return (__m512bh)v; }

template <int MR, int NR>
void BlockTileBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n, const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const int64_t blocks_per_row = K / bs;
  const __m512 code = _mm512_loadu_ps(w.code);
  const __m512i low_nibble_hi_word = _mm512_set1_epi32(0x000F0000);
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t kb = xp.k0 / bs; kb < xp.k1 / bs; ++kb) {
    __m512i tab[NR];
    const uint8_t* p[NR];
    for (int j = 0; j < NR; ++j) {
      const __m512 t = RoundVec512<ComputeDType::kBf16>(
          _mm512_mul_ps(code, _mm512_set1_ps(BlockAbsmax(w, (n + j) * blocks_per_row + kb))));
      tab[j] = _mm512_zextsi256_si512(
          _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(t), 16)));
      p[j] = w.packed + ((n + j) * K + kb * bs) / 2;
    }
    const uint16_t* x = xp.bf16 + (kb * bs - xp.k0);
    for (int64_t s = 0; s < bs; s += 32) {
      for (int j = 0; j < NR; ++j) {
        // Lane l holds byte l: low word <- high nibble (element 2l), high
        // word <- low nibble (element 2l + 1).
        const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[j] + s / 2)));
        const __m512i idx = _mm512_ternarylogic_epi32(_mm512_srli_epi32(d, 4), _mm512_slli_epi32(d, 16),
                                                      low_nibble_hi_word, 0xF8);  // a | (b & c)
        const __m512bh wv = AsBf16Pairs(_mm512_permutexvar_epi16(idx, tab[j]));
        for (int i = 0; i < MR; ++i) {
          const __m512i xv = _mm512_loadu_si512(x + i * xp.ld + s);
          acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, AsBf16Pairs(xv));
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) out.Put(i, n + j, Sum16(acc[i][j]));
}

template <int MR>
void BlockRowsBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  constexpr int NR = MR == 1 ? 4 : 2;
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) BlockTileBf16Dot<MR, NR>(w, xp, n, out);
  for (; n < n1; ++n) BlockTileBf16Dot<MR, 1>(w, xp, n, out);
}

void BlockKernelBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return BlockRowsBf16Dot<1>(w, xp, n0, n1, out);
    case 2: return BlockRowsBf16Dot<2>(w, xp, n0, n1, out);
    case 3: return BlockRowsBf16Dot<3>(w, xp, n0, n1, out);
    default: return BlockRowsBf16Dot<4>(w, xp, n0, n1, out);
  }
}

// bf16 compute, blocksize a multiple of 64: a 64-byte load holds 128
// weights, the first 64 (128-bit lanes 0-1) in one block and the next 64
// (lanes 2-3) in one block. Each block's 16 weights round_bf16(code *
// absmax) are split into a table of their low bytes and one of their high
// bytes, each in every lane of its block; vpshufb looks 64 nibbles up in a
// table at once, and an unpack of the two byte planes gives 32 bf16 words.
// Per 128 weights: 3 ops of indices, 4 lookups, 4 unpacks and 4 vdpbf16ps
// (32 products each), and 6 ops of tables, against 4 widenings, 12 index
// ops, 4 vpermw and ~20 table ops per 128 in BlockTileBf16Dot.
// Word 32q + 8L + j of a group (vector q, lane L) is the weight of column
// 32L + 16(q & 1) + (q >> 1) + 2j: high nibbles (even columns) give q = 0
// and 1, low nibbles q = 2 and 3; X is stored in that order
// (FillBf16NibbleOrder). Four accumulators per output, one per q, summed
// at the end, so that at one row of X four chains run at once.
constexpr int kBf16NibbleColumn(int p) {
  const int q = p / 32, lane = p % 32 / 8, j = p % 8;
  return 32 * lane + 16 * (q & 1) + (q >> 1) + 2 * j;
}

// x[m, k0 + g*128 + kBf16NibbleColumn(p)] -> out[m * ldo + g*128 + p] as
// bf16 words; zero past the panel.
void FillBf16NibbleOrder(const float* x, int64_t ldx, int mr, int64_t len, uint16_t* out, int64_t ldo) {
  alignas(64) uint16_t words[kNibbleGroup];
  for (int m = 0; m < mr; ++m) {
    for (int64_t g = 0; g < len; g += kNibbleGroup) {
      const int64_t n = std::min<int64_t>(kNibbleGroup, len - g);
      FillBf16Words(x + m * ldx + g, ldx, 1, n, words, kNibbleGroup);
      std::fill(words + n, words + kNibbleGroup, uint16_t{0});
      uint16_t* o = out + m * ldo + g;
      for (int p = 0; p < kNibbleGroup; ++p) o[p] = words[kBf16NibbleColumn(p)];
    }
  }
}

template <int MR>
void NibbleTileBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n, const PanelAbsmax& pa,
                       const YOut& out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  const __m512 code = _mm512_loadu_ps(w.code);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  // Per lane: the low bytes of its 8 words, then their high bytes.
  const __m512i split = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  // Lanes 0-1 get block A's 16 low (high) bytes, lanes 2-3 block B's.
  const __m512i low_planes = _mm512_setr_epi64(0, 2, 0, 2, 4, 6, 4, 6);
  const __m512i high_planes = _mm512_setr_epi64(1, 3, 1, 3, 5, 7, 5, 7);
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int q = 0; q < 4; ++q) acc[i][q] = _mm512_setzero_ps();
  for (int64_t kg = xp.k0; kg < xp.k1; kg += kNibbleGroup) {
    const bool half = xp.k1 - kg < kNibbleGroup;  // 64 columns left
    const uint8_t* p = w.packed + (n * K + kg) / 2;
    const __m512i v = half ? _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
                           : _mm512_loadu_si512(p);
    const float a0 = pa.am[(kg - xp.k0) / bs];
    const float a1 = half ? 0.0f : pa.am[(kg + 64 - xp.k0) / bs];
    // Words 0-15: round_bf16(code * a0) (lanes 0-1); 16-31: with a1.
    // vcvtne2ps2bf16 rounds to nearest even as F32ToBF16 does, but reads a
    // denormal product as zero; vdpbf16ps reads a denormal weight as zero
    // too, so the products are the same.
    const __m512i tab = (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(code, _mm512_set1_ps(a1)),
                                                     _mm512_mul_ps(code, _mm512_set1_ps(a0)));
    const __m512i bytes = _mm512_shuffle_epi8(tab, split);
    const __m512i plane_lo = _mm512_permutexvar_epi64(low_planes, bytes);
    const __m512i plane_hi = _mm512_permutexvar_epi64(high_planes, bytes);
    const __m512i even = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
    const __m512i odd = _mm512_and_si512(v, nibble);
    const __m512i even_lo = _mm512_shuffle_epi8(plane_lo, even);
    const __m512i even_hi = _mm512_shuffle_epi8(plane_hi, even);
    const __m512i odd_lo = _mm512_shuffle_epi8(plane_lo, odd);
    const __m512i odd_hi = _mm512_shuffle_epi8(plane_hi, odd);
    const __m512i wv[4] = {_mm512_unpacklo_epi8(even_lo, even_hi), _mm512_unpackhi_epi8(even_lo, even_hi),
                           _mm512_unpacklo_epi8(odd_lo, odd_hi), _mm512_unpackhi_epi8(odd_lo, odd_hi)};
    const uint16_t* x = xp.bf16 + (kg - xp.k0);
    for (int i = 0; i < MR; ++i) {
      for (int q = 0; q < 4; ++q) {
        const __m512i xv = _mm512_loadu_si512(x + i * xp.ld + 32 * q);
        acc[i][q] = _mm512_dpbf16_ps(acc[i][q], AsBf16Pairs(wv[q]), AsBf16Pairs(xv));
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    const __m512 s = _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3]));
    out.Put(i, n, Sum16(s));
  }
}

template <int MR>
void NibbleRowsBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  NibbleRows(w, xp, n0, n1, [&](int64_t c0, int64_t c1, const PanelAbsmax& pa) {
    for (int64_t n = c0; n < c1; ++n) {
      NibbleTileBf16Dot<MR>(w, xp, n, PanelAbsmax{pa.am + (n - c0) * pa.ld, pa.ld}, out);
    }
  });
}

void NibbleKernelBf16Dot(const FourBitWeight& w, const XPanel& xp, int64_t n0, int64_t n1, const YOut& out) {
  switch (xp.mr) {
    case 1: return NibbleRowsBf16Dot<1>(w, xp, n0, n1, out);
    case 2: return NibbleRowsBf16Dot<2>(w, xp, n0, n1, out);
    case 3: return NibbleRowsBf16Dot<3>(w, xp, n0, n1, out);
    default: return NibbleRowsBf16Dot<4>(w, xp, n0, n1, out);
  }
}

TIERSERVE_TARGET_END

// ---------------------------------------------------------------------------

template <ComputeDType kCd>
void Run(CpuPath path, const FourBitWeight& w, const float* x, int64_t ldx, float* y, int64_t ldy,
         int64_t M, int64_t n0, int64_t n1) {
  const int64_t K = w.cols;
  const bool blocks = path != CpuPath::kPortable && FourBitUsesBlockKernels(w);
  const bool bf16_dot = blocks && kCd == ComputeDType::kBf16 && path == CpuPath::kAvx512Bf16;
  const bool planes = blocks && kCd != ComputeDType::kFp16 && path == CpuPath::kAvx2;
  const bool nibble_order = blocks && kCd == ComputeDType::kFp32 && !planes &&
                            path != CpuPath::kPortable && UsesNibbleOrder512(w);
  const bool bf16_nibble_order = bf16_dot && UsesNibbleOrder512(w);
  // X is read in place (fp32, unless the plane kernels want it permuted) or
  // rounded and rearranged into `buf` a panel at a time, panels ending on
  // block boundaries for the block kernels.
  const bool in_place = kCd == ComputeDType::kFp32 && !planes && !nibble_order;
  const int64_t panel = in_place ? K : blocks ? kPanel / w.blocksize * w.blocksize : kPanel;
  alignas(64) float buf[kMaxTileRows * kPanel];
  for (int64_t k0 = 0; k0 < K; k0 += panel) {
    const int64_t k1 = std::min(K, k0 + panel);
    for (int64_t m = 0; m < M; m += kMaxTileRows) {
      XPanel xp;
      xp.mr = static_cast<int>(std::min<int64_t>(kMaxTileRows, M - m));
      xp.k0 = k0;
      xp.k1 = k1;
      const float* xs = x + m * ldx + k0;
      if (in_place) {
        xp.f32 = xs;
        xp.ld = ldx;
      } else {
        // The nibble-order kernels read whole groups of 128 columns.
        xp.ld = nibble_order || bf16_nibble_order ? (k1 - k0 + kNibbleGroup - 1) / kNibbleGroup * kNibbleGroup
                                                  : k1 - k0;
        if (bf16_dot) {
          uint16_t* words = reinterpret_cast<uint16_t*>(buf);
          if (bf16_nibble_order) {
            FillBf16NibbleOrder(xs, ldx, xp.mr, k1 - k0, words, xp.ld);
          } else {
            FillBf16Words(xs, ldx, xp.mr, k1 - k0, words, xp.ld);
          }
          xp.bf16 = words;
        } else {
          if (nibble_order) {
            FillNibbleOrder512(xs, ldx, xp.mr, k1 - k0, buf, xp.ld);
          } else if (planes) {
            FillPermutedAvx2<kCd>(xs, ldx, xp.mr, k1 - k0, buf, xp.ld);
          } else if (path == CpuPath::kPortable) {
            FillPortable<kCd>(xs, ldx, xp.mr, k1 - k0, buf, xp.ld);
          } else {
            FillAvx2<kCd>(xs, ldx, xp.mr, k1 - k0, buf, xp.ld);
          }
          xp.f32 = buf;
        }
      }
      const YOut out{y + m * ldy, ldy, k0 > 0};
      if (!blocks) {
        GeneralRows<kCd>(w, xp, n0, n1, out);
      } else if (bf16_dot) {
        if (bf16_nibble_order) {
          NibbleKernelBf16Dot(w, xp, n0, n1, out);
        } else {
          BlockKernelBf16Dot(w, xp, n0, n1, out);
        }
      } else if (nibble_order) {
        NibbleKernelAvx512(w, xp, n0, n1, out);
      } else if (planes) {
        if constexpr (kCd != ComputeDType::kFp16) PlanesKernelAvx2<kCd>(w, xp, n0, n1, out);
      } else if (path == CpuPath::kAvx2) {
        if constexpr (kCd == ComputeDType::kFp16) BlockKernelAvx2<kCd>(w, xp, n0, n1, out);
      } else {
        BlockKernelAvx512<kCd>(w, xp, n0, n1, out);
      }
    }
  }
}

}  // namespace

bool FourBitUsesBlockKernels(const FourBitWeight& w) {
  const int64_t bs = w.blocksize;
  return bs > 0 && bs % 32 == 0 && bs <= kPanel && w.cols % bs == 0;
}

void FourBitMatMulOnPath(CpuPath path, const FourBitWeight& w, const float* x, int64_t ldx,
                         float* y, int64_t ldy, int64_t M, int64_t n0, int64_t n1,
                         ComputeDType cd) {
  switch (cd) {
    case ComputeDType::kFp32: return Run<ComputeDType::kFp32>(path, w, x, ldx, y, ldy, M, n0, n1);
    case ComputeDType::kFp16: return Run<ComputeDType::kFp16>(path, w, x, ldx, y, ldy, M, n0, n1);
    case ComputeDType::kBf16: return Run<ComputeDType::kBf16>(path, w, x, ldx, y, ldy, M, n0, n1);
  }
}

void FourBitMatMul(const FourBitWeight& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                   int64_t M, int64_t n0, int64_t n1, ComputeDType cd) {
  FourBitMatMulOnPath(BestCpuPath(), w, x, ldx, y, ldy, M, n0, n1, cd);
}

void FourBitRowF32(const FourBitWeight& w, int64_t r, float* out) {
  const int64_t K = w.cols;
  const int64_t bs = w.blocksize;
  int64_t f = r * K;
  const int64_t fend = f + K;
  while (f < fend) {
    const int64_t b = f / bs;
    const int64_t seg_end = std::min(fend, (b + 1) * bs);
    const float a = BlockAbsmax(w, b);
    for (; f < seg_end; ++f) out[f - r * K] = w.code[Nibble(w.packed, f)] * a;
  }
}

}  // namespace tierserve::cpu
