// bitsandbytes' formats on a CUDA device: 4-bit (NF4 / FP4) dequantization,
// a fused 4-bit GEMV for decode, a dequantize + cuBLASLt fp16/bf16 GEMM for
// prefill, and LLM.int8() (activation quantization with per-row outliers,
// cuBLASLt int8 x int8 -> int32 GEMM, fp32 epilogue).
//
// The per-element math is kernels/common/bnb_quant.h's, the kernel bodies are
// kernels/cuda/bnb_kernels.cuh's; each function below states what it computes
// in terms of the CPU kernel it reproduces. All pointers are device pointers
// unless said otherwise; every function only enqueues work on `stream` (no
// allocation, no synchronization) and returns the launch's error.
// cudaErrorInvalidValue marks a violated precondition that is checked.
#ifndef TIERSERVE_KERNELS_CUDA_BNB_KERNELS_H_
#define TIERSERVE_KERNELS_CUDA_BNB_KERNELS_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cuda/bnb_kernels.cuh"

namespace tierserve::cuda {

// ---- 4-bit ----------------------------------------------------------------

// out[f] = round_R(code[nibble(f)] * absmax(f / blocksize)) for f < rows * cols,
// stored as fp32 (R = kFp32, out is float*) or as fp16 / bf16 bit patterns
// (out is uint16_t*, round to nearest even). With R = kFp32 this is
// cpu::Dequantize4bit / cpu::Dequantize4bitNested bit for bit.
cudaError_t Dequantize4bit(const Bnb4bitView& w, BnbRound out_type, void* out, cudaStream_t stream);

// out[i] = round_R(x[i]) for i < n (R = kFp16 or kBf16: uint16_t bit patterns;
// kFp32 copies).
cudaError_t ConvertF32(const float* x, int64_t n, BnbRound out_type, void* out, cudaStream_t stream);

// y[m, n] = sum_k round_cd(x[m, k]) * round_cd(code[nibble] * absmax) for m < M,
// n < w.rows: cpu::FourBitMatMul's factors, summed per bnb_kernels.cuh's GEMV
// order (within gamma_{L+5} * sum_k |term_k| of the exact sum, L = 8 * floor(K / 256)
// + min(8, K % 256)).
// Meant for decode (small M): each row of W is read once per row of x.
// REQUIRES: M <= 65535.
cudaError_t Bnb4bitGemv(const Bnb4bitView& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                        int64_t M, BnbRound cd, cudaStream_t stream);

// ---- LLM.int8() activations ----------------------------------------------

// Device buffers for M rows of quantized activations (not owned).
struct Int8ActivationsView {
  int8_t* q = nullptr;               // [M, K], dense (row stride K), as the GEMM reads it
  float* sca = nullptr;              // [M]
  int32_t* outlier_count = nullptr;  // [M]: |O_t|, possibly > outlier_capacity
  int32_t* outlier_col = nullptr;    // [M, outlier_capacity]
  float* outlier_x = nullptr;        // [M, outlier_capacity]
  int32_t outlier_capacity = 0;      // K makes an overflow impossible
};

// cpu::QuantizeActivationsInt8 for x [M, K] (row stride ldx): same q, SCA and
// outlier lists (ascending columns), the lists truncated to the capacity with
// the true count kept (see bnb_kernels.cuh). REQUIRES: finite x.
cudaError_t QuantizeActivationsInt8(const float* x, int64_t ldx, int64_t M, int64_t K,
                                    float threshold, const Int8ActivationsView& out,
                                    cudaStream_t stream);

// cpu::Int8MatMul's fp32 epilogue from C = q . cb^T (int32 [M, N], row stride
// ldc), bit for bit:
//   y[t, n] = C[t, n] * (SCA[t] * scb[n]) * 6.200124e-05
//           + sum_{e in O_t} x_e * ((cb[n, col_e] * scb[n]) * 7.874016e-3)
// and NaN for a row whose outliers overflowed the capacity. REQUIRES: M <= 65535.
cudaError_t Int8MatMulEpilogue(const int32_t* c, int64_t ldc, const Int8ActivationsView& a,
                               const int8_t* cb, const float* scb, int64_t M, int64_t N, int64_t K,
                               float* y, int64_t ldy, cudaStream_t stream);

// ---- cuBLASLt -------------------------------------------------------------

// A cuBLASLt handle and its device workspace (256-byte aligned, as cuBLASLt
// requires). Owns both. Calls through one context must be serialized by the
// caller (one workspace); use one context per stream.
class BlasLtContext {
 public:
  // Creates the handle and a workspace of `workspace_bytes` (0: none).
  static cudaError_t Create(size_t workspace_bytes, std::unique_ptr<BlasLtContext>* out);
  ~BlasLtContext();
  BlasLtContext(const BlasLtContext&) = delete;
  BlasLtContext& operator=(const BlasLtContext&) = delete;

  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  // The cuBLASLt status behind the last error a GEMM here returned.
  cublasStatus_t last_status() const { return last_status_; }
  void set_last_status(cublasStatus_t s) { last_status_ = s; }

 private:
  BlasLtContext() = default;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  cublasStatus_t last_status_ = CUBLAS_STATUS_SUCCESS;
};

// C[M, N] (int32, row-major, row stride N) = X[M, K] (int8, row-major, dense)
// . W[N, K]^T (int8, row-major, dense), exact. REFERENCE.md section 6's
// row-major recipe (TN, CUBLAS_COMPUTE_32I, alpha 1, beta 0).
// REQUIRES (checked: cudaErrorInvalidValue): N % 4 == 0, K % 4 == 0, all
// pointers 4-byte aligned. cudaErrorNotSupported when cuBLASLt has no algorithm.
cudaError_t Int8GemmI32(BlasLtContext& ctx, const int8_t* x, const int8_t* w, int32_t* c,
                        int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// cpu::Int8MatMul: Int8GemmI32(a.q, cb) into `c_scratch` ([M, N] int32), then
// Int8MatMulEpilogue. `a` from QuantizeActivationsInt8. Bit-identical to the
// CPU kernel (the int32 sum is exact). REQUIRES: as both.
cudaError_t Int8MatMul(BlasLtContext& ctx, const Int8ActivationsView& a, const int8_t* cb,
                       const float* scb, int32_t* c_scratch, float* y, int64_t ldy, int64_t M,
                       int64_t N, int64_t K, cudaStream_t stream);

// Y[M, N] (fp32, row stride ldy) = X[M, K] . W[N, K]^T with X and W dense
// row-major fp16 (dtype kFp16) or bf16 (kBf16) bit patterns, products and sums
// in fp32 (CUBLAS_COMPUTE_32F; cuBLASLt's summation order).
cudaError_t HalfGemmF32Out(BlasLtContext& ctx, BnbRound dtype, const uint16_t* x,
                           const uint16_t* w, float* y, int64_t ldy, int64_t M, int64_t N,
                           int64_t K, cudaStream_t stream);

// Prefill over a 4-bit weight: cpu::FourBitMatMul with cd = kFp16 or kBf16,
//   y[m, n] = sum_k round_cd(x[m, k]) * round_cd(code[nibble] * absmax),
// as ConvertF32(x) -> x_scratch [M, K], Dequantize4bit(w) -> w_scratch
// [w.rows, w.cols], HalfGemmF32Out. Scratch buffers are 16-bit, caller-owned.
cudaError_t Bnb4bitMatMulPrefill(BlasLtContext& ctx, const Bnb4bitView& w, BnbRound cd,
                                 const float* x, int64_t M, uint16_t* x_scratch,
                                 uint16_t* w_scratch, float* y, int64_t ldy, cudaStream_t stream);

}  // namespace tierserve::cuda

#endif  // TIERSERVE_KERNELS_CUDA_BNB_KERNELS_H_
