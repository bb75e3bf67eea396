// IEEE binary16 and bfloat16 <-> fp32 conversion, bit-exact, host and device.
#ifndef TIERSERVE_KERNELS_COMMON_HALF_H_
#define TIERSERVE_KERNELS_COMMON_HALF_H_

#include <cstdint>
#include <cstring>

#include "kernels/common/host_device.h"

namespace tierserve {

TS_HD float BitsToF32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

TS_HD uint32_t F32ToBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

// binary16 -> fp32, exact for every input including subnormals, inf and NaN.
TS_HD float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return BitsToF32(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return BitsToF32(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return BitsToF32(sign);
  // Subnormal: normalise the mantissa.
  uint32_t e = 113;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return BitsToF32(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

// fp32 -> binary16 with round-to-nearest-even (as numpy and torch do).
TS_HD uint16_t F32ToF16(float f) {
  const uint32_t u = F32ToBits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow
  if (abs < 0x38800000u) {  // subnormal or zero in binary16
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below half the min subnormal
    const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - static_cast<int>(abs >> 23);  // 14..24
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

TS_HD float BF16ToF32(uint16_t b) { return BitsToF32(static_cast<uint32_t>(b) << 16); }

// fp32 -> bfloat16 with round-to-nearest-even; NaN stays NaN.
TS_HD uint16_t F32ToBF16(float f) {
  const uint32_t u = F32ToBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_COMMON_HALF_H_
