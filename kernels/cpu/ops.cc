#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"

namespace tierserve::cpu {

void RmsNorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0.0;  // double: the mean of squares over thousands of values
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * scale);
}

void LayerNorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  const float fmean = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - fmean) * inv * w[i] + b[i];
}

void SiluMul(float* gate, const float* up, int64_t n) {
  // exp(-|g|) by attention's vector exponential (within 2 ulp; std::exp one
  // value at a time was a few percent of a decode step), then
  // silu(g) = g / (1 + e) for g >= 0 and g * e / (1 + e) below: e <= 1
  // never overflows.
  constexpr int64_t kChunk = 256;
  float e[kChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t m = std::min(kChunk, n - i0);
    float* g = gate + i0;
    const float* u = up + i0;
    for (int64_t i = 0; i < m; ++i) e[i] = -std::fabs(g[i]);
    AttentionExp(e, m);
    for (int64_t i = 0; i < m; ++i) {
      const float x = g[i];
      g[i] = (x >= 0.0f ? x / (1.0f + e[i]) : x * e[i] / (1.0f + e[i])) * u[i];
    }
  }
}

void GeluTanh(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

void AddInPlace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void RopeRotateHalf(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin) {
  const int64_t half = head_dim / 2;
  const float* c = cos_sin;
  const float* s = cos_sin + half;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i];
      const float b = v[i + half];
      v[i] = a * c[i] - b * s[i];
      v[i + half] = b * c[i] + a * s[i];
    }
  }
}

}  // namespace tierserve::cpu
