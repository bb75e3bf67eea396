// Dequantization of one GGUF (ggml) quantization block to fp32, host and
// device. The arithmetic follows ggml's dequantize_row_* element by element,
// in the same order of float operations, so results match ggml's scalar path.
//
// Blocks are read through byte pointers with no alignment requirement: a
// block inside a mapped file sits at any offset. Multi-byte fields are
// little-endian, as GGUF stores them.
//
// Layouts (ggml_half = IEEE binary16; offsets in bytes):
//   Q8_0 (32 elems, 34 B): d@0, int8 qs[32]@2.           x[j] = qs[j]*d
//   Q4_0 (32 elems, 18 B): d@0, u8 qs[16]@2.  byte j holds elem j (low
//        nibble) and elem j+16 (high nibble).             x = (q-8)*d
//   Q4_1 (32 elems, 20 B): d@0, m@2, qs[16]@4.            x = q*d + m
//   Q5_0 (32 elems, 22 B): d@0, u32 qh@2, qs[16]@6. Nibbles as Q4_0; bit j
//        of qh is the fifth bit of elem j.                x = (q-16)*d
//   Q5_1 (32 elems, 24 B): d@0, m@2, u32 qh@4, qs[16]@8.   x = q*d + m
//   Q4_K (256 elems, 144 B): d@0, dmin@2, scales[12]@4, qs[128]@16. Eight
//        sub-blocks of 32 with 6-bit scale sc and min mn packed in `scales`;
//        qs[32p..32p+31] hold sub-block 2p (low nibbles) and 2p+1 (high).
//                                                         x = d*sc*q - dmin*mn
//   Q6_K (256 elems, 210 B): ql[128]@0, qh[64]@128, int8 scales[16]@192,
//        d@208. Two halves of 128; in each, elem l+32k (l<32, k<4) takes its
//        low 4 bits from ql[l+32*(k%2)] (low nibble for k<2, else high), its
//        top 2 bits from qh[l] bits 2k..2k+1, and scale scales[l/16 + 2k].
//                                                         x = d*sc*(q-32)
#ifndef TIERSERVE_KERNELS_COMMON_GGUF_BLOCKS_H_
#define TIERSERVE_KERNELS_COMMON_GGUF_BLOCKS_H_

#include <cstdint>

#include "kernels/common/half.h"
#include "kernels/common/host_device.h"

namespace tierserve {

inline constexpr int kGgufQK = 32;     // elements per Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 block
inline constexpr int kGgufQK_K = 256;  // elements per K-quant super-block

inline constexpr int kQ8_0BlockBytes = 34;
inline constexpr int kQ4_0BlockBytes = 18;
inline constexpr int kQ4_1BlockBytes = 20;
inline constexpr int kQ5_0BlockBytes = 22;
inline constexpr int kQ5_1BlockBytes = 24;
inline constexpr int kQ4_KBlockBytes = 144;
inline constexpr int kQ6_KBlockBytes = 210;

TS_HD float GgufHalfAt(const uint8_t* p) {
  return F16ToF32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

TS_HD uint32_t GgufU32At(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// block: 34 bytes -> out[32]
TS_HD void DequantizeBlockQ8_0(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  for (int j = 0; j < kGgufQK; ++j) out[j] = static_cast<int8_t>(block[2 + j]) * d;
}

// block: 18 bytes -> out[32]
TS_HD void DequantizeBlockQ4_0(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  const uint8_t* qs = block + 2;
  for (int j = 0; j < kGgufQK / 2; ++j) {
    const int x0 = (qs[j] & 0x0F) - 8;
    const int x1 = (qs[j] >> 4) - 8;
    out[j] = x0 * d;
    out[j + kGgufQK / 2] = x1 * d;
  }
}

// block: 20 bytes -> out[32]
TS_HD void DequantizeBlockQ4_1(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  const float m = GgufHalfAt(block + 2);
  const uint8_t* qs = block + 4;
  for (int j = 0; j < kGgufQK / 2; ++j) {
    const int x0 = qs[j] & 0x0F;
    const int x1 = qs[j] >> 4;
    out[j] = x0 * d + m;
    out[j + kGgufQK / 2] = x1 * d + m;
  }
}

// block: 22 bytes -> out[32]
TS_HD void DequantizeBlockQ5_0(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  const uint32_t qh = GgufU32At(block + 2);
  const uint8_t* qs = block + 6;
  for (int j = 0; j < kGgufQK / 2; ++j) {
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const int x0 = ((qs[j] & 0x0F) | h0) - 16;
    const int x1 = ((qs[j] >> 4) | h1) - 16;
    out[j] = x0 * d;
    out[j + kGgufQK / 2] = x1 * d;
  }
}

// block: 24 bytes -> out[32]
TS_HD void DequantizeBlockQ5_1(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  const float m = GgufHalfAt(block + 2);
  const uint32_t qh = GgufU32At(block + 4);
  const uint8_t* qs = block + 8;
  for (int j = 0; j < kGgufQK / 2; ++j) {
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const int x0 = (qs[j] & 0x0F) | h0;
    const int x1 = (qs[j] >> 4) | h1;
    out[j] = x0 * d + m;
    out[j + kGgufQK / 2] = x1 * d + m;
  }
}

// The 6-bit scale and min of Q4_K sub-block `j` (0..7). Sub-blocks 0-3 keep
// theirs in the low 6 bits of bytes j and j+4; sub-blocks 4-7 split theirs
// into a low nibble in byte j+4 and two high bits borrowed from the top of
// bytes j-4 (scale) and j (min).
TS_HD void Q4_KScaleMin(int j, const uint8_t* scales, int* sc, int* mn) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *mn = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
    *mn = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// block: 144 bytes -> out[256]
TS_HD void DequantizeBlockQ4_K(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block);
  const float dmin = GgufHalfAt(block + 2);
  const uint8_t* scales = block + 4;
  const uint8_t* q = block + 16;
  for (int p = 0; p < 4; ++p) {
    int sc, mn;
    Q4_KScaleMin(2 * p, scales, &sc, &mn);
    const float d1 = d * sc;
    const float m1 = dmin * mn;
    Q4_KScaleMin(2 * p + 1, scales, &sc, &mn);
    const float d2 = d * sc;
    const float m2 = dmin * mn;
    for (int l = 0; l < 32; ++l) out[64 * p + l] = d1 * (q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) out[64 * p + 32 + l] = d2 * (q[l] >> 4) - m2;
    q += 32;
  }
}

// block: 210 bytes -> out[256]
TS_HD void DequantizeBlockQ6_K(const uint8_t* block, float* out) {
  const float d = GgufHalfAt(block + 208);
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(block + 192);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * sc[is + 0] * q1;
      out[l + 32] = d * sc[is + 2] * q2;
      out[l + 64] = d * sc[is + 4] * q3;
      out[l + 96] = d * sc[is + 6] * q4;
    }
    out += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_COMMON_GGUF_BLOCKS_H_
