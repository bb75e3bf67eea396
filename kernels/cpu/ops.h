// Element-wise and row-wise fp32 kernels of the forward pass. Free functions
// over raw pointers; they allocate nothing and own nothing. Each states its
// math in one line; rows are contiguous.
#ifndef TIERSERVE_KERNELS_CPU_OPS_H_
#define TIERSERVE_KERNELS_CPU_OPS_H_

#include <cstdint>

namespace tierserve::cpu {

// y[i] = w[i] * x[i] / sqrt(mean(x^2) + eps), for one row of n.
void RmsNorm(const float* x, const float* w, float* y, int64_t n, float eps);

// y[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i], for one row of n.
void LayerNorm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);

// gate[i] = silu(gate[i]) * up[i] = gate/(1+exp(-gate)) * up, over n.
void SiluMul(float* gate, const float* up, int64_t n);

// x[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place over n.
void GeluTanh(float* x, int64_t n);

// y[i] += x[i] over n.
void AddInPlace(float* y, const float* x, int64_t n);

// Rotary embedding in the rotate-half convention, in place on `n_heads`
// heads of `head_dim` each: for i < head_dim/2,
//   (x[i], x[i+d/2]) <- (x[i] c - x[i+d/2] s, x[i+d/2] c + x[i] s)
// with c = cos(pos * inv_freq[i]), s = sin(pos * inv_freq[i]) given in
// `cos_sin` as d/2 cos values followed by d/2 sin values.
void RopeRotateHalf(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_OPS_H_
