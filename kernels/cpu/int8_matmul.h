// LLM.int8() matrix multiplication (bitsandbytes MatMul8bitLt) on the CPU.
//
// Weights W [N, K] are stored as bitsandbytes serializes them:
//   cb  int8 [N, K] row-major, values in [-127, 127]
//   scb fp32 [N], the row absmax:  W[n, k] ~= cb[n, k] * scb[n] / 127.
// Activations X [M, K] are quantized per row (token) t to int8 with scale
// SCA[t]; entries with |x| >= threshold ("outliers") are left out of the int8
// part and multiplied in fp32 instead. Then
//
//   y[t, n] = C[t, n] * (SCA[t] * scb[n]) * 6.200124e-05          (int8 part)
//           + sum_{k in O_t} x[t, k] * ((cb[n, k] * scb[n]) * 7.874016e-3)  (outliers)
//   C[t, n] = sum_k q[t, k] * cb[n, k]                      (exact, int32)
//
// in bitsandbytes' float order (int8_mm_dequant, int8_vectorwise_dequant);
// 6.200124e-05 is its literal for 1/127^2. The int32 sum is exact on
// every ISA path, and the fp32 epilogue is one shared function, so every path
// gives bit-identical outputs.
//
// Batch invariance (a deliberate departure from bitsandbytes): bitsandbytes
// makes a column an outlier column for the whole batch when any row has an
// outlier in it. Here outliers are decided per row, so a row's output never
// depends on which other rows share its batch.
#ifndef TIERSERVE_KERNELS_CPU_INT8_MATMUL_H_
#define TIERSERVE_KERNELS_CPU_INT8_MATMUL_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu/cpu_features.h"

namespace tierserve::cpu {

// bitsandbytes' dequantization constant (fp32 nearest to 1/127^2 as written
// in its source).
inline constexpr float kInt8DequantScale = 6.200124e-05f;

// M rows of quantized activations. Owns its buffers; Resize allocates, the
// kernels never do. Not thread-safe to write; any number of Int8MatMul calls
// may read it at once.
struct Int8Activations {
  int64_t rows = 0;    // M
  int64_t cols = 0;    // K
  int64_t stride = 0;  // row stride of q: cols rounded up to 64
  // [rows, stride]: q[t, k]; zero for outlier columns of row t and for k >= cols.
  std::vector<int8_t> q;
  // [rows]: SCA[t], the absmax of row t's non-outlier entries (0 for none;
  // NaN, with q zeros, when one of them is NaN or infinite).
  std::vector<float> scale;
  // [rows + 1]: row t's outliers are entries [outlier_begin[t], outlier_begin[t + 1])
  // of outlier_col / outlier_x, in ascending column order.
  std::vector<int64_t> outlier_begin;
  std::vector<int32_t> outlier_col;  // capacity rows * cols: column k
  std::vector<float> outlier_x;      // capacity rows * cols: x[t, k] as given

  // Sizes the buffers for M rows of K columns (keeps capacity when shrinking).
  void Resize(int64_t M, int64_t K);
};

// Per-row data of the weights that the kernels need beyond cb and scb,
// computed once when the weights are loaded (Int8RowSums); the caller owns
// the arrays, which travel with the weights.
struct Int8WeightAux {
  // [N]: sum_k cb[n, k]. The AVX-512 VNNI path multiplies unsigned q + 128
  // by signed cb and subtracts 128 * row_sum[n].
  const int32_t* row_sum = nullptr;
};

// out[n] = sum_k cb[n, k] for n < N. REQUIRES: cb is [N, K] row-major.
void Int8RowSums(const int8_t* cb, int64_t N, int64_t K, int32_t* out);

// Quantizes X [M, K] (row-major, rows K apart) row by row into `out`:
//   O_t    = { k : |x[t,k]| >= threshold } when threshold > 0, else empty
//   SCA[t] = max_{k not in O_t} |x[t,k]|
//   q[t,k] = 0 for k in O_t, else the fp32 expression
//            clamp(nearbyint(x[t,k] * ((1.0f / SCA[t]) * 127.0f)), -127, 127)
//   (nearbyint in the default round-half-to-even mode: torch.round of
//   bitsandbytes' int8_vectorwise_quant, which computes A * (127 / row_stats),
//   the division evaluated by torch as a reciprocal times 127).
//   A row with SCA[t] == 0 gets q = 0. Outliers are recorded per row.
// REQUIRES: out->Resize(M, K) was called; x is finite.
void QuantizeActivationsInt8(const float* x, int64_t M, int64_t K, float threshold,
                             Int8Activations* out);

// As QuantizeActivationsInt8 on a given path (all paths give the same bytes).
// REQUIRES: CpuPathSupported(path).
void QuantizeActivationsInt8OnPath(CpuPath path, const float* x, int64_t M, int64_t K,
                                   float threshold, Int8Activations* out);

// y[t, n] as in the header comment for t < M and n0 <= n < n1; y has row
// stride ldy. Runs on BestCpuPath(). One thread; no allocation.
// REQUIRES: a.rows >= M, a.cols == K, cb is [N, K], scb and aux.row_sum cover
// rows [n0, n1), K <= 133,000 (so that |C| < 2^31).
void Int8MatMul(const Int8Activations& a, const int8_t* cb, const float* scb,
                const Int8WeightAux& aux, float* y, int64_t ldy, int64_t M, int64_t K, int64_t n0,
                int64_t n1);

// As Int8MatMul on a given path. REQUIRES: CpuPathSupported(path).
void Int8MatMulOnPath(CpuPath path, const Int8Activations& a, const int8_t* cb, const float* scb,
                      const Int8WeightAux& aux, float* y, int64_t ldy, int64_t M, int64_t K,
                      int64_t n0, int64_t n1);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_INT8_MATMUL_H_
