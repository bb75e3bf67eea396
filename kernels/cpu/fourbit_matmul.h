// Matrix multiplication over bitsandbytes 4-bit weights (NF4 / FP4), with the
// weights decoded in registers straight from the packed bytes.
//
// Layout (as bitsandbytes' quantize_4bit writes it): the weight [N, K] is
// flattened row-major (element f = n * K + k) and cut into blocks of
// `blocksize` elements (a block may straddle two rows when K % blocksize != 0).
//   packed  uint8 [(N*K + 1) / 2]: element f in byte f / 2, the HIGH nibble
//           for even f, the LOW nibble for odd f (so with K odd, rows do not
//           start on a byte boundary)
//   code    fp32 [16]: the NF4 or FP4 table
//   absmax  fp32 [nblocks], or double-quantized (absmax == nullptr):
//           absmax(b) = code2[qabsmax[b]] * absmax2[b / 256] + offset,
//           in fp32, multiply then add (never fused)
// Dequantized W[n, k] = code[nibble(f)] * absmax(f / blocksize).
//
// Math (round_cd: identity for fp32; round-to-nearest-even to fp16 or bf16
// and back for the others):
//   y[m, n] = sum_k round_cd(x[m, k]) * round_cd(code[nibble] * absmax(block))
// with the products and the sum in fp32. The factors are exactly these; how
// the sum is ordered and rounded is the path's (tests hold every path to
// gamma_{ceil(K/8)+ceil(K/2048)+5} * sum_k |term_k| of the exact sum). With
// fp32 compute the AVX2 kernel, and the AVX-512 one when blocksize % 64 == 0,
// sum each block as absmax * sum_k x[m, k] * code[nibble] (the same value,
// rounded differently);
// the AVX512_BF16 kernel uses vdpbf16ps, which flushes denormals.
// The order of summation is fixed by (K, blocksize, compute dtype, path)
// alone, so a row's result does not depend on M, on the other rows of the
// batch, or on how [n0, n1) is split.
// Rows of X are rounded (and, for some kernels, reordered) into a 32 KiB
// stack buffer, K taken in panels of 2048 columns.
#ifndef TIERSERVE_KERNELS_CPU_FOURBIT_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_FOURBIT_MATMUL_H_

#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace tierserve::cpu {

enum class ComputeDType { kFp32, kFp16, kBf16 };

// Non-owning view of one 4-bit weight; see the layout above.
struct FourBitWeight {
  const uint8_t* packed = nullptr;
  int64_t rows = 0;  // N
  int64_t cols = 0;  // K
  int64_t blocksize = 64;
  const float* code = nullptr;      // [16]
  const float* absmax = nullptr;    // [nblocks], or nullptr for double quant:
  const uint8_t* qabsmax = nullptr;  // [nblocks]
  const float* absmax2 = nullptr;    // [(nblocks + 255) / 256]
  float offset = 0.0f;
  const float* code2 = nullptr;  // [256]
};

// Y[m, n] = sum_k round_cd(X[m, k]) * round_cd(W[n, k]) for m < M, n0 <= n < n1.
// X is [M, K] with row stride ldx, Y has row stride ldy. Runs on
// BestCpuPath(). One thread; no allocation.
void FourBitMatMul(const FourBitWeight& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                   int64_t M, int64_t n0, int64_t n1, ComputeDType cd);

// As FourBitMatMul on a given path. REQUIRES: CpuPathSupported(path).
void FourBitMatMulOnPath(CpuPath path, const FourBitWeight& w, const float* x, int64_t ldx,
                         float* y, int64_t ldy, int64_t M, int64_t n0, int64_t n1,
                         ComputeDType cd);

// True when the SIMD paths run their block kernels on `w` (K % blocksize == 0,
// blocksize % 32 == 0, blocksize <= 2048; SmolLM2's K = 576 and 1536 with
// blocksize 64). Otherwise every path runs the same portable loop (and the
// outputs of all paths are bit-identical).
bool FourBitUsesBlockKernels(const FourBitWeight& w);

// Row r of W, dequantized in fp32 (code[nibble] * absmax, one rounding): an
// embedding lookup. out has w.cols entries.
void FourBitRowF32(const FourBitWeight& w, int64_t r, float* out);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_FOURBIT_MATMUL_H_
