// fp32 matrix multiplication for linear layers.
#ifndef TIERSERVE_KERNELS_CPU_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_MATMUL_H_

#include <cstdint>

namespace tierserve::cpu {

// Y[m, n] = sum_k X[m, k] * W[n, k]   for m < M and n0 <= n < n1.
// W is [N, K] row-major (the nn.Linear layout), X is [M, K] with row stride
// ldx, Y is [M, N] with row stride ldy. Rows of W are read once per block of
// up to 4 rows of X, so a batch of M tokens streams the weights M/4 times
// rather than M times.
void MatMulF32(const float* x, int64_t ldx, const float* w, float* y, int64_t ldy, int64_t M,
               int64_t K, int64_t n0, int64_t n1);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_MATMUL_H_
