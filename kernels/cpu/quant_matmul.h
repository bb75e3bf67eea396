// Matrix multiplication with weights kept in GGUF block formats (served as
// stored) and activations in fp32. Weights are decoded in registers as they
// stream past, so a step reads 4.5-8.5 bits per weight instead of 32, while
// the math stays that of fp32 over the dequantized weights (up to the order
// of summation): no activation is quantized.
#ifndef TIERSERVE_KERNELS_CPU_QUANT_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_QUANT_MATMUL_H_

#include <cstdint>

#include "kernels/common/dtype.h"

namespace tierserve::cpu {

// True for the block types QuantMatMulF32 takes: Q8_0, Q4_0, Q4_1.
bool QuantMatMulSupports(DType type);

// Y[m, n] = sum_k X[m, k] * dequant(W)[n, k]   for m < M and n0 <= n < n1.
// W holds rows of K / 32 blocks of `type`, `row_bytes` apart; X is [M, K]
// with row stride ldx, Y has row stride ldy.
// REQUIRES: QuantMatMulSupports(type), K % 32 == 0.
void QuantMatMulF32(DType type, const float* x, int64_t ldx, const uint8_t* w, int64_t row_bytes,
                    float* y, int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_QUANT_MATMUL_H_
