#include "kernels/cpu/quantize.h"

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/common/gguf_blocks.h"
#include "kernels/common/half.h"

namespace tierserve {
namespace {

void PutHalf(uint8_t* p, float f) {
  const uint16_t h = F32ToF16(f);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}

// trunc(v) clamped to [0, 15]. ggml casts without a clamp below; for finite
// inputs v never falls under -1, so this only guards NaN and infinities
// (whose cast would be undefined).
int TruncNibble(float v) {
  if (!(v > 0.0f)) return 0;
  if (v >= 15.0f) return 15;
  return static_cast<int>(v);
}

}  // namespace

void QuantizeRowQ8_0(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kGgufQK; ++b, x += kGgufQK, out += kQ8_0BlockBytes) {
    float amax = 0.0f;
    for (int j = 0; j < kGgufQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    PutHalf(out, d);
    for (int j = 0; j < kGgufQK; ++j) {
      // Finite inputs give |q| <= 127; the guards keep the cast defined for
      // NaN and infinities.
      float q = std::round(x[j] * id);
      if (std::isnan(q)) q = 0.0f;
      q = std::fmin(127.0f, std::fmax(-127.0f, q));
      out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

void QuantizeRowQ4_0(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kGgufQK; ++b, x += kGgufQK, out += kQ4_0BlockBytes) {
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kGgufQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    PutHalf(out, d);
    for (int j = 0; j < kGgufQK / 2; ++j) {
      const int q0 = TruncNibble(x[j] * id + 8.5f);
      const int q1 = TruncNibble(x[j + kGgufQK / 2] * id + 8.5f);
      out[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeRowQ4_1(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kGgufQK; ++b, x += kGgufQK, out += kQ4_1BlockBytes) {
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int j = 0; j < kGgufQK; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    PutHalf(out, d);
    PutHalf(out + 2, min);
    for (int j = 0; j < kGgufQK / 2; ++j) {
      const int q0 = TruncNibble((x[j] - min) * id + 0.5f);
      const int q1 = TruncNibble((x[j + kGgufQK / 2] - min) * id + 0.5f);
      out[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

}  // namespace tierserve
