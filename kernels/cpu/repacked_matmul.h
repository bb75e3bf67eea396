// Matrix multiplication over GGUF block weights repacked 16 rows at a time.
//
// The GGUF layout keeps each row's blocks together, so a kernel reduces one
// dot product per row and re-reads every activation per row. Repacked, the
// blocks of 16 consecutive rows at the same columns sit side by side with the
// bytes of one column adjacent: one 16-byte load then yields a column (two
// for 4-bit types) of 16 rows, which multiply one broadcast activation into
// 16 accumulators with no horizontal reduction. Scales are kept as fp16 and
// the bytes are the stored ones, so the repacked matrix is exactly as large
// as the original, and the result is fp32 math over the dequantized weights.
//
// Group-block layout (group g = rows 16g..16g+15, block b = columns 32b..32b+31):
//   Q8_0: d[16] fp16 | q[32][16] int8          (column k: the 16 rows' q[k])
//   Q4_0: d[16] fp16 | q[16][16] bytes         (byte j of row r as stored:
//   Q4_1: d[16] fp16 | m[16] fp16 | q[16][16]   column j low, j+16 high nibble)
#ifndef TIERSERVE_KERNELS_CPU_REPACKED_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_REPACKED_MATMUL_H_

#include <cstdint>

#include "kernels/common/dtype.h"

namespace tierserve::cpu {

inline constexpr int64_t kRepackRows = 16;

// True when an [N, K] matrix of `type` can be repacked (Q8_0, Q4_0, Q4_1;
// N % 16 == 0; K % 32 == 0) and this build has the kernel for it.
bool CanRepack(DType type, int64_t N, int64_t K);

// Bytes of the repacked [N, K] matrix (the same as the GGUF rows).
int64_t RepackedBytes(DType type, int64_t N, int64_t K);

// Rewrites N GGUF rows (`row_bytes` apart) into the repacked layout at dst.
// REQUIRES: CanRepack(type, N, K).
void RepackRows(DType type, const uint8_t* src, int64_t row_bytes, int64_t N, int64_t K,
                uint8_t* dst);

// Y[m, n] = sum_k X[m, k] * dequant(W)[n, k] for m < M and n0 <= n < n1,
// W repacked. REQUIRES: n0 and n1 multiples of 16.
void RepackedMatMulF32(DType type, const float* x, int64_t ldx, const uint8_t* w, float* y,
                       int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1);

// Row r of the repacked matrix as fp32 (an embedding lookup).
void RepackedRowF32(DType type, const uint8_t* w, int64_t K, int64_t r, float* out);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_REPACKED_MATMUL_H_
