// bitsandbytes' quantization formats, one element at a time, host and device.
// The arithmetic is what bitsandbytes 0.50.2 runs on a CPU tensor (torch
// 2.15), float operation for float operation, so a caller reproduces its bytes
// exactly; tests/data/bnb/goldens.safetensors (written by bitsandbytes itself)
// proves it in kernels/cpu/bnb_quantize_test.cc.
//
// LLM.int8() rows (int8_vectorwise_quant, int8_vectorwise_dequant, int8_mm_dequant):
//   scb  = max_i |w_i|                                      (fp32, per row)
//   q    = round_half_even(w * ((1 / scb) * 127))           (three roundings: torch
//          evaluates `127.0 / t` as reciprocal(t) * 127); NaN (a zero row) -> 0
//   w'   = (float(q) * scb) * 0.007874016f                  (7.874015718698502e-3 in fp32)
//   out  = (float(c_i32) * (sca * scb)) * 6.200124e-05f     (the stats multiply first)
//
// 4-bit blockwise (quantize_4bit / dequantize_4bit, blocks of `blocksize`):
//   absmax = max |x| over the block. A full block scales by the reciprocal,
//            s = clamp(x * (1 / max(absmax, 1e-38)), -1, 1), and stores absmax
//            unclamped; the trailing partial block divides, s = clamp(x / a, -1, 1)
//            with a = max(absmax, 1e-38), and stores the clamped a.
//   code   = the code entry whose interval between fp32 midpoints
//            m_k = (c_k + c_{k+1}) / 2 of the *sorted* code holds s: the index is
//            #{k : m_k < s}, so a value on a midpoint takes the lower code.
//            NF4 is sorted as stored; FP4 maps sorted position p to nibble
//            BnbFp4SortedToNibble(p) (torch.argsort's order; it puts nibble 0
//            before nibble 8, so s in (0, m_8] gets nibble 8, s <= 0 nibble 0).
//            x * (1/a) vs x / a matters here: a value a few ulps from a
//            midpoint lands on either side.
//   packing: byte j = code[2j] << 4 | code[2j+1] (first element HIGH); an odd
//            length is padded with the code of 0.0 (NF4 7, FP4 0).
//   x'     = code[nibble] * absmax[i / blocksize]. bitsandbytes' C library
//            (used when the last dimension is even) has -0.0 for FP4 nibble 8,
//            its torch code (odd last dimension) and quant_map +0.0.
//
// Double quant (compress_statistics=True): the absmax vector is centered on its
// mean, offset = torch.sum(absmax) / n (SumLikeTorch in bnb_quantize.cc has
// torch's summation order), and quantized in blocks of 256 with the signed 8-bit
// dynamic code. bitsandbytes' CPU library does not search for the nearest code:
// it maps s = clamp(y * (1 / absmax2), -1, 1) to one of 65536 lookup slots,
//   slot = (uint16) trunc(fma((s + 1) * 0.5, 65535, 0.5))
// and the slot's code is #{k < 255 : m_k < (2 * slot) / 65535 - 1}
// (m_k = (c_k + c_{k+1}) * 0.5). A block whose absmax2 is 0 stores code 0.
// Recovery: absmax = (code2[q] * absmax2[i / 256]) + offset, two roundings.
#ifndef TIERSERVE_KERNELS_COMMON_BNB_QUANT_H_
#define TIERSERVE_KERNELS_COMMON_BNB_QUANT_H_

#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"

namespace tierserve {

inline constexpr int kBnb4bitCodeSize = 16;
inline constexpr int kBnbDynamicCodeSize = 256;
inline constexpr int kBnbNestedBlocksize = 256;  // double quant's blocksize
inline constexpr int kBnbLutSlots = 65536;       // CPU blockwise lookup slots
inline constexpr float kBnbAbsmaxFloor = 1e-38f;  // quantize_4bit's clamp(min=1e-38)
// int8_vectorwise_dequant's 1/127 and int8_mm_dequant's 1/127^2, as bitsandbytes writes them.
inline constexpr float kBnbInt8DequantScale = static_cast<float>(7.874015718698502e-3);
inline constexpr float kBnbInt8MmDequantScale = static_cast<float>(6.200124e-05);

// NF4 (index 0..15): get_4bit_type("nf4"), sorted ascending.
TS_HD float BnbNf4Code(int i) {
  const float k[kBnb4bitCodeSize] = {
      -1.0f,
      -0.6961928009986877f,
      -0.5250730514526367f,
      -0.39491748809814453f,
      -0.28444138169288635f,
      -0.18477343022823334f,
      -0.09105003625154495f,
      0.0f,
      0.07958029955625534f,
      0.16093020141124725f,
      0.24611230194568634f,
      0.33791524171829224f,
      0.44070982933044434f,
      0.5626170039176941f,
      0.7229568362236023f,
      1.0f};
  return k[i];
}

// FP4 (index 0..15): get_4bit_type("fp4") = {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12 and
// their negatives; bit 3 is the sign. Index 8 is +0.0 here, as in the quant_map
// bitsandbytes stores (Python's `-0` is the integer 0). Its native CPU and CUDA
// dequantizers use -0.0 there instead; the values compare equal.
TS_HD float BnbFp4Code(int i) {
  const float k[kBnb4bitCodeSize] = {
      0.0f,       0.0625f / 12.0f,  8.0f / 12.0f,  1.0f,
      4.0f / 12.0f, 0.5f,          2.0f / 12.0f,  0.25f,
      0.0f,       -0.0625f / 12.0f, -8.0f / 12.0f, -1.0f,
      -4.0f / 12.0f, -0.5f,        -2.0f / 12.0f, -0.25f};
  return k[i];
}

// Sorted FP4 position -> nibble (torch.argsort of the FP4 code on the CPU).
TS_HD int BnbFp4SortedToNibble(int p) {
  const int k[kBnb4bitCodeSize] = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};
  return k[p];
}

// FP4 code in ascending order (position p holds nibble BnbFp4SortedToNibble(p)).
TS_HD float BnbFp4SortedCode(int p) { return BnbFp4Code(BnbFp4SortedToNibble(p)); }

// Nibble for one scaled value s (already clamped to [-1, 1]): the number of fp32
// midpoints of the sorted code strictly below s, which is
// torch.bucketize(s, (c[:-1] + c[1:]) / 2, right=False).
TS_HD int BnbNf4Nibble(float s) {
  int q = 0;
  for (int k = 0; k + 1 < kBnb4bitCodeSize; ++k) {
    q += (BnbNf4Code(k) + BnbNf4Code(k + 1)) / 2.0f < s ? 1 : 0;
  }
  return q;
}
TS_HD int BnbFp4Nibble(float s) {
  int p = 0;
  for (int k = 0; k + 1 < kBnb4bitCodeSize; ++k) {
    p += (BnbFp4SortedCode(k) + BnbFp4SortedCode(k + 1)) / 2.0f < s ? 1 : 0;
  }
  return BnbFp4SortedToNibble(p);
}

// torch.clamp(v, -1, 1); NaN stays NaN.
TS_HD float BnbClampUnit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

// Two nibbles in one byte, the first element in the high nibble.
TS_HD uint8_t BnbPackNibbles(int first, int second) {
  return static_cast<uint8_t>((first << 4) | second);
}
TS_HD int BnbNibbleAt(const uint8_t* packed, int64_t i) {
  const uint8_t b = packed[i >> 1];
  return (i & 1) ? (b & 0x0F) : (b >> 4);
}

// One dequantized 4-bit element.
TS_HD float BnbDequant4bit(float code_value, float absmax) { return code_value * absmax; }

// fp32 a*b+c with two roundings. The compilers would otherwise fuse it into an
// FMA (GCC's C++ default is -ffp-contract=fast; nvcc's --fmad=true), while
// bitsandbytes multiplies in its C library and adds in torch.
TS_HD float BnbMulThenAdd(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(a, b), c);
#else
  volatile float p = a * b;
  return p + c;
#endif
}

// Block absmax under double quant: code2[q] * absmax2[i / 256] + offset.
TS_HD float BnbRecoverAbsmax(float code2_of_q, float absmax2, float offset) {
  return BnbMulThenAdd(code2_of_q, absmax2, offset);
}

// Lookup slot (0..65535) of a value scaled by the block's reciprocal absmax.
TS_HD int BnbLutSlot(float scaled) {
  const float t = (BnbClampUnit(scaled) + 1.0f) * 0.5f;
  const float f = fmaf(t, 65535.0f, 0.5f);
  // x86's truncating convert turns NaN into INT32_MIN, whose low 16 bits are 0.
  if (!(f == f)) return 0;
  return static_cast<int>(static_cast<uint16_t>(static_cast<int32_t>(f)));
}

// The normalized value a lookup slot stands for.
TS_HD float BnbLutSlotValue(int slot) {
  return (2.0f * static_cast<float>(slot)) / 65535.0f - 1.0f;
}

// Index into a sorted 256-entry code for one value scaled by 1/absmax2, through
// the lookup slots exactly as bitsandbytes' CPU quantize_blockwise does.
// REQUIRES: code ascending (as bitsandbytes' own table build assumes).
TS_HD int BnbDynamicIndex(float scaled, const float* code) {
  const float v = BnbLutSlotValue(BnbLutSlot(scaled));
  // The table build scans midpoints upward from the previous slot's code; on a
  // sorted code that equals the number of midpoints below v (binary search).
  int lo = 0, hi = kBnbDynamicCodeSize - 1;  // answer in [0, 255]
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    const float m = (code[mid] + code[mid + 1]) * 0.5f;
    if (m < v) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// torch.round: round half to even. NaN -> 0, which is what torch's float->int8
// cast gives for the NaN of an all-zero row (0 * inf).
TS_HD int8_t BnbInt8Quantize(float w, float row_scale /* 127 / scb */) {
  const float r = rintf(w * row_scale);
  if (!(r == r)) return 0;
  return static_cast<int8_t>(static_cast<int>(r));
}

// The per-row multiplier. bitsandbytes writes `127.0 / row_stats`, which torch
// evaluates as reciprocal(row_stats) * 127: two roundings (inf for a zero row).
TS_HD float BnbInt8RowScale(float scb) { return (1.0f / scb) * 127.0f; }

TS_HD float BnbInt8Dequant(int8_t q, float scb) {
  return static_cast<float>(q) * scb * kBnbInt8DequantScale;
}

// int8_mm_dequant for one output: C_i32 * (SCA[t] * SCB[o]) * 6.200124e-05.
TS_HD float BnbInt8MmDequant(int32_t c, float sca, float scb) {
  return static_cast<float>(c) * (sca * scb) * kBnbInt8MmDequantScale;
}

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_COMMON_BNB_QUANT_H_
