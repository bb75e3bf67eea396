// Matrix multiplication with int8 activations against GGUF block weights
// (Q4_0, Q4_1, Q8_0), as llama.cpp's CPU backend computes it: each row of X
// is quantized per 32 columns (Q8Activations: d = max|x| / 127, q = x / d
// rounded to nearest even, and for Q4_1 s = d * sum(q), d and s rounded to
// fp16, as llama.cpp's x86 Q8_1 quantizer does), each block's dot product is
// an exact integer sum of weight nibbles/bytes times q, and the block adds
//   Q4_0: dw * d * (sum(w q) - 8 sum(q))      Q4_1: dw * d * sum(w q) + mw * s
//   Q8_0: dw * d * sum(w q)
// to the row's fp32 sum, block by block in column order (two FMAs at most).
// The integer part is exact on every path, and the fp32 operations are the
// same on every path and for every M, so the AVX-512 VNNI, AVX2 and portable
// paths give the same bits, and a row of X gets the same bits whatever else
// is in the call (batch invariance).
//
// Weights are repacked 16 rows at a time so that one 64-byte load holds 4
// consecutive weight bytes of each of 16 rows: what one vpdpbusd multiplies
// by 4 broadcast activation bytes into 16 int32 row sums. Group-block layout
// (group g = rows 16g..16g+15, block b = columns 32b..32b+31), the stored
// bytes rearranged (the same size as the GGUF rows):
//   Q4_0: d[16] fp16 | q[4][16][4]         chunk c, row r: stored bytes 4c..4c+3
//   Q4_1: d[16] fp16 | m[16] fp16 | q[4][16][4]   (byte j: column j low nibble,
//                                                  column j + 16 high nibble)
//   Q8_0: d[16] fp16 | q[8][16][4]         chunk c, row r: columns 4c..4c+3
#ifndef TIERSERVE_KERNELS_CPU_Q8_DOT_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_Q8_DOT_MATMUL_H_

#include <cstdint>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/cpu/cpu_features.h"

namespace tierserve::cpu {

inline constexpr int64_t kQ8DotRows = 16;

// M rows of activations quantized per 32 columns; row i's block b is
// q[(i * blocks + b) * 32 ...], d[i * blocks + b], ...
struct Q8Activations {
  int64_t rows = 0;
  int64_t blocks = 0;
  std::vector<int8_t> q;
  std::vector<float> d;       // fp16-rounded scale
  std::vector<float> s;       // fp16-rounded d * sum(q) (llama.cpp's Q8_1 s)
  std::vector<int32_t> qsum;  // sum(q), exact

  void Resize(int64_t M, int64_t K);
};

// Quantizes X [M, K] (rows ldx apart). REQUIRES: K % 32 == 0.
void QuantizeQ8(const float* x, int64_t ldx, int64_t M, int64_t K, Q8Activations* out);
// Rows [m0, m1) only, into `out` already Resize'd for all of them: threads
// can quantize disjoint row ranges of one matrix.
void QuantizeQ8Rows(const float* x, int64_t ldx, int64_t m0, int64_t m1, Q8Activations* out);
// The same on a given path (the same bits on each). REQUIRES: CpuPathSupported(path).
void QuantizeQ8OnPath(CpuPath path, const float* x, int64_t ldx, int64_t M, int64_t K, Q8Activations* out);

// True when an [N, K] matrix of `type` can be repacked for this kernel (Q4_0,
// Q4_1, Q8_0; N % 16 == 0; K % 32 == 0).
bool CanRepackQ8Dot(DType type, int64_t N, int64_t K);

// Rewrites N GGUF rows (`row_bytes` apart) into the layout above at dst, which
// holds as many bytes as the rows. REQUIRES: CanRepackQ8Dot(type, N, K).
void RepackQ8Dot(DType type, const uint8_t* src, int64_t row_bytes, int64_t N, int64_t K,
                 uint8_t* dst);

// Row r of the repacked matrix as fp32, exactly as DequantizeRowF32 decodes
// the stored row (an embedding lookup through a tied head).
void Q8DotRowF32(DType type, const uint8_t* w, int64_t K, int64_t r, float* out);

// Y[m, n] = the sums above for m < M and n0 <= n < n1, W repacked, X quantized
// (a.blocks == K / 32). REQUIRES: n0 and n1 multiples of 16.
void Q8DotMatMul(DType type, const Q8Activations& a, const uint8_t* w, float* y, int64_t ldy,
                 int64_t M, int64_t K, int64_t n0, int64_t n1);
// The same on a given path (tests and benchmarks). REQUIRES: CpuPathSupported(path).
void Q8DotMatMulOnPath(CpuPath path, DType type, const Q8Activations& a, const uint8_t* w, float* y,
                       int64_t ldy, int64_t M, int64_t K, int64_t n0, int64_t n1);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_Q8_DOT_MATMUL_H_
