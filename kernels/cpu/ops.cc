#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"

namespace tierserve::cpu {

namespace {

// The sum of term(i) for i in [0, n), in double, as eight running sums (of
// i mod 8) added pairwise, then the tail: eight independent chains that the
// compiler vectorizes, where one chain of dependent adds made a decode
// step's norms wait on the add latency (SmolLM2, 576 values: ~0.9 us a
// norm). In double, the order moves the sum by a few units of 2^-53 of it,
// far below the float it becomes.
template <typename Term>
double SumDouble(int64_t n, Term term) {
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += term(i + j);
  double sum = ((part[0] + part[4]) + (part[2] + part[6])) + ((part[1] + part[5]) + (part[3] + part[7]));
  for (; i < n; ++i) sum += term(i);
  return sum;
}

}  // namespace

void RmsNorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  // double: the mean of squares over thousands of values (each square exact)
  const double ss = SumDouble(n, [x](int64_t i) { return static_cast<double>(x[i]) * x[i]; });
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * scale);
}

void LayerNorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  const double mean = SumDouble(n, [x](int64_t i) { return static_cast<double>(x[i]); }) / static_cast<double>(n);
  const double var = SumDouble(n, [x, mean](int64_t i) { return (x[i] - mean) * (x[i] - mean); }) /
                     static_cast<double>(n);
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
