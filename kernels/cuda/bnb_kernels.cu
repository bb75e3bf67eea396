#include "kernels/cuda/bnb_kernels.h"

#include <cstdint>
#include <memory>
#include <utility>

namespace tierserve::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridX = 0x7FFFFFFF;
constexpr int64_t kMaxGridY = 65535;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- __global__ wrappers: index plumbing only; the math is in the .cuh ----

template <BnbRound R>
__global__ void Dequantize4bitKernel(Bnb4bitView w, BnbStorageT<R>* out) {
  Dequantize4bitBody<R>(blockIdx.x, threadIdx.x, blockDim.x, w, out);
}

template <BnbRound R>
__global__ void ConvertF32Kernel(const float* x, int64_t n, BnbStorageT<R>* out) {
  ConvertF32Body<R>(blockIdx.x, threadIdx.x, blockDim.x, x, n, out);
}

template <BnbRound R>
__global__ void Bnb4bitGemvKernel(Bnb4bitGemvArgs a) {
  float s = Bnb4bitGemvLanePartial<R>(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x, a);
  // BnbWarpXorSum's butterfly. A warp is idle or busy as a whole (one row
  // per warp, blockDim a multiple of 32), so the full mask is right.
  for (int off = kBnbWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, off);
  const int64_t n = Bnb4bitGemvRow(blockIdx.x, threadIdx.x, blockDim.x);
  if (threadIdx.x % kBnbWarp == 0 && n < a.w.rows) {
    a.y[static_cast<int64_t>(blockIdx.y) * a.ldy + n] = s;
  }
}

__global__ void __launch_bounds__(kThreads) QuantizeInt8RowsKernel(Int8QuantizeArgs a) {
  __shared__ float part_max[kThreads];
  __shared__ int32_t part_count[kThreads];
  QuantizeInt8RowPhase1(blockIdx.x, threadIdx.x, blockDim.x, a, part_max, part_count);
  __syncthreads();
  if (threadIdx.x == 0) QuantizeInt8RowPhase2(blockIdx.x, blockDim.x, a, part_max, part_count);
  __syncthreads();
  QuantizeInt8RowPhase3(blockIdx.x, threadIdx.x, blockDim.x, a, part_max, part_count);
}

__global__ void Int8EpilogueKernel(Int8EpilogueArgs a) {
  Int8EpilogueBody(blockIdx.x, blockIdx.y, threadIdx.x, blockDim.x, a);
}

// ---- cuBLASLt ----

cudaError_t ToCudaError(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return cudaSuccess;
    case CUBLAS_STATUS_INVALID_VALUE: return cudaErrorInvalidValue;
    case CUBLAS_STATUS_ALLOC_FAILED: return cudaErrorMemoryAllocation;
    case CUBLAS_STATUS_NOT_INITIALIZED: return cudaErrorInitializationError;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return cudaErrorNotSupported;
    default: return cudaErrorUnknown;
  }
}

// The descriptors of one cublasLtMatmul, destroyed on scope exit.
class LtMatmulPlan {
 public:
  LtMatmulPlan() = default;
  ~LtMatmulPlan() {
    if (pref_ != nullptr) cublasLtMatmulPreferenceDestroy(pref_);
    if (c_ != nullptr) cublasLtMatrixLayoutDestroy(c_);
    if (b_ != nullptr) cublasLtMatrixLayoutDestroy(b_);
    if (a_ != nullptr) cublasLtMatrixLayoutDestroy(a_);
    if (op_ != nullptr) cublasLtMatmulDescDestroy(op_);
  }
  LtMatmulPlan(const LtMatmulPlan&) = delete;
  LtMatmulPlan& operator=(const LtMatmulPlan&) = delete;

  // REFERENCE.md section 6's row-major recipe for Y[M, N] = X[M, K] . W[N, K]^T:
  // A = W as column-major K x N (ld K) with TRANSA = T, B = X as column-major
  // K x M (ld K) with TRANSB = N, D = Y as column-major N x M (ld ldy): cuBLAS's
  // m = N, n = M, k = K.
  cublasStatus_t Build(cublasComputeType_t compute, cudaDataType_t scale, cudaDataType_t in,
                       cudaDataType_t out, int64_t M, int64_t N, int64_t K, int64_t ldy,
                       size_t workspace_bytes) {
    cublasStatus_t s = cublasLtMatmulDescCreate(&op_, compute, scale);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    const cublasOperation_t ta = CUBLAS_OP_T;
    const cublasOperation_t tb = CUBLAS_OP_N;
    s = cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatrixLayoutCreate(&a_, in, static_cast<uint64_t>(K), static_cast<uint64_t>(N), K);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatrixLayoutCreate(&b_, in, static_cast<uint64_t>(K), static_cast<uint64_t>(M), K);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatrixLayoutCreate(&c_, out, static_cast<uint64_t>(N), static_cast<uint64_t>(M), ldy);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceCreate(&pref_);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    s = cublasLtMatmulPreferenceSetAttribute(pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace_bytes, sizeof workspace_bytes);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return CUBLAS_STATUS_SUCCESS;
  }

  // Heuristic, then the matmul (D = C, beta = 0).
  cublasStatus_t Run(BlasLtContext& ctx, const void* alpha, const void* beta, const void* w,
                     const void* x, void* y, cudaStream_t stream) {
    cublasLtMatmulHeuristicResult_t res = {};
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(ctx.handle(), op_, a_, b_, c_, c_, pref_, 1,
                                                      &res, &found);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (found == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    return cublasLtMatmul(ctx.handle(), op_, alpha, w, a_, x, b_, beta, y, c_, y, c_, &res.algo,
                          ctx.workspace(), ctx.workspace_bytes(), stream);
  }

 private:
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr;
  cublasLtMatrixLayout_t b_ = nullptr;
  cublasLtMatrixLayout_t c_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
};

cudaError_t Finish(BlasLtContext& ctx, cublasStatus_t s) {
  ctx.set_last_status(s);
  return ToCudaError(s);
}

bool Aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0; }

}  // namespace

// ---- 4-bit ----

cudaError_t Dequantize4bit(const Bnb4bitView& w, BnbRound out_type, void* out, cudaStream_t stream) {
  if (w.rows < 0 || w.cols < 0 || w.blocksize <= 0) return cudaErrorInvalidValue;
  const int64_t bytes = (w.rows * w.cols + 1) / 2;
  if (bytes == 0) return cudaSuccess;
  const int64_t grid = CeilDiv(bytes, kThreads);
  if (grid > kMaxGridX) return cudaErrorInvalidValue;
  const unsigned g = static_cast<unsigned>(grid);
  switch (out_type) {
    case BnbRound::kFp32:
      Dequantize4bitKernel<BnbRound::kFp32><<<g, kThreads, 0, stream>>>(w, static_cast<float*>(out));
      break;
    case BnbRound::kFp16:
      Dequantize4bitKernel<BnbRound::kFp16><<<g, kThreads, 0, stream>>>(w, static_cast<uint16_t*>(out));
      break;
    case BnbRound::kBf16:
      Dequantize4bitKernel<BnbRound::kBf16><<<g, kThreads, 0, stream>>>(w, static_cast<uint16_t*>(out));
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t ConvertF32(const float* x, int64_t n, BnbRound out_type, void* out, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t grid = CeilDiv(n, kThreads);
  if (grid > kMaxGridX) return cudaErrorInvalidValue;
  const unsigned g = static_cast<unsigned>(grid);
  switch (out_type) {
    case BnbRound::kFp32:
      return cudaMemcpyAsync(out, x, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                             stream);
    case BnbRound::kFp16:
      ConvertF32Kernel<BnbRound::kFp16><<<g, kThreads, 0, stream>>>(x, n, static_cast<uint16_t*>(out));
      break;
    case BnbRound::kBf16:
      ConvertF32Kernel<BnbRound::kBf16><<<g, kThreads, 0, stream>>>(x, n, static_cast<uint16_t*>(out));
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t Bnb4bitGemv(const Bnb4bitView& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                        int64_t M, BnbRound cd, cudaStream_t stream) {
  if (w.rows < 0 || w.cols < 0 || w.blocksize <= 0 || M < 0 || M > kMaxGridY) {
    return cudaErrorInvalidValue;
  }
  if (M == 0 || w.rows == 0) return cudaSuccess;
  constexpr int kRowsPerBlock = kThreads / kBnbWarp;
  const int64_t grid = CeilDiv(w.rows, kRowsPerBlock);
  if (grid > kMaxGridX) return cudaErrorInvalidValue;
  const dim3 g(static_cast<unsigned>(grid), static_cast<unsigned>(M));
  Bnb4bitGemvArgs a;
  a.w = w;
  a.x = x;
  a.ldx = ldx;
  a.y = y;
  a.ldy = ldy;
  switch (cd) {
    case BnbRound::kFp32: Bnb4bitGemvKernel<BnbRound::kFp32><<<g, kThreads, 0, stream>>>(a); break;
    case BnbRound::kFp16: Bnb4bitGemvKernel<BnbRound::kFp16><<<g, kThreads, 0, stream>>>(a); break;
    case BnbRound::kBf16: Bnb4bitGemvKernel<BnbRound::kBf16><<<g, kThreads, 0, stream>>>(a); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

// ---- LLM.int8() ----

cudaError_t QuantizeActivationsInt8(const float* x, int64_t ldx, int64_t M, int64_t K,
                                    float threshold, const Int8ActivationsView& out,
                                    cudaStream_t stream) {
  if (M < 0 || K < 0 || K > INT32_MAX || M > kMaxGridX || out.outlier_capacity < 0) {
    return cudaErrorInvalidValue;
  }
  if (M == 0) return cudaSuccess;
  Int8QuantizeArgs a;
  a.x = x;
  a.ldx = ldx;
  a.K = K;
  a.threshold = threshold;
  a.q = out.q;
  a.ldq = K;
  a.sca = out.sca;
  a.outlier_count = out.outlier_count;
  a.outlier_col = out.outlier_col;
  a.outlier_x = out.outlier_x;
  a.outlier_capacity = out.outlier_capacity;
  QuantizeInt8RowsKernel<<<static_cast<unsigned>(M), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t Int8MatMulEpilogue(const int32_t* c, int64_t ldc, const Int8ActivationsView& a,
                               const int8_t* cb, const float* scb, int64_t M, int64_t N, int64_t K,
                               float* y, int64_t ldy, cudaStream_t stream) {
  if (M < 0 || N < 0 || K < 0 || M > kMaxGridY) return cudaErrorInvalidValue;
  if (M == 0 || N == 0) return cudaSuccess;
  const int64_t grid = CeilDiv(N, kThreads);
  if (grid > kMaxGridX) return cudaErrorInvalidValue;
  Int8EpilogueArgs e;
  e.c = c;
  e.ldc = ldc;
  e.sca = a.sca;
  e.outlier_count = a.outlier_count;
  e.outlier_col = a.outlier_col;
  e.outlier_x = a.outlier_x;
  e.outlier_capacity = a.outlier_capacity;
  e.cb = cb;
  e.scb = scb;
  e.N = N;
  e.K = K;
  e.y = y;
  e.ldy = ldy;
  Int8EpilogueKernel<<<dim3(static_cast<unsigned>(grid), static_cast<unsigned>(M)), kThreads, 0,
                       stream>>>(e);
  return cudaGetLastError();
}

// ---- cuBLASLt ----

cudaError_t BlasLtContext::Create(size_t workspace_bytes, std::unique_ptr<BlasLtContext>* out) {
  std::unique_ptr<BlasLtContext> ctx(new BlasLtContext());
  const cublasStatus_t s = cublasLtCreate(&ctx->handle_);
  if (s != CUBLAS_STATUS_SUCCESS) {
    ctx->handle_ = nullptr;
    return ToCudaError(s);
  }
  if (workspace_bytes > 0) {
    // cudaMalloc's alignment (at least 256 bytes) is what cuBLASLt asks for.
    const cudaError_t e = cudaMalloc(&ctx->workspace_, workspace_bytes);
    if (e != cudaSuccess) {
      ctx->workspace_ = nullptr;
      return e;
    }
    ctx->workspace_bytes_ = workspace_bytes;
  }
  *out = std::move(ctx);
  return cudaSuccess;
}

BlasLtContext::~BlasLtContext() {
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

cudaError_t Int8GemmI32(BlasLtContext& ctx, const int8_t* x, const int8_t* w, int32_t* c,
                        int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (M < 0 || N < 0 || K < 0 || N % 4 != 0 || K % 4 != 0) return cudaErrorInvalidValue;
  if (!Aligned4(x) || !Aligned4(w) || !Aligned4(c)) return cudaErrorInvalidValue;
  if (M == 0 || N == 0) return cudaSuccess;
  if (K == 0) return cudaMemsetAsync(c, 0, static_cast<size_t>(M * N) * sizeof(int32_t), stream);
  LtMatmulPlan plan;
  cublasStatus_t s = plan.Build(CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I, M, N, K, N,
                                ctx.workspace_bytes());
  if (s != CUBLAS_STATUS_SUCCESS) return Finish(ctx, s);
  const int32_t alpha = 1;
  const int32_t beta = 0;
  return Finish(ctx, plan.Run(ctx, &alpha, &beta, w, x, c, stream));
}

cudaError_t Int8MatMul(BlasLtContext& ctx, const Int8ActivationsView& a, const int8_t* cb,
                       const float* scb, int32_t* c_scratch, float* y, int64_t ldy, int64_t M,
                       int64_t N, int64_t K, cudaStream_t stream) {
  cudaError_t e = Int8GemmI32(ctx, a.q, cb, c_scratch, M, N, K, stream);
  if (e != cudaSuccess) return e;
  return Int8MatMulEpilogue(c_scratch, N, a, cb, scb, M, N, K, y, ldy, stream);
}

cudaError_t HalfGemmF32Out(BlasLtContext& ctx, BnbRound dtype, const uint16_t* x,
                           const uint16_t* w, float* y, int64_t ldy, int64_t M, int64_t N,
                           int64_t K, cudaStream_t stream) {
  if (dtype != BnbRound::kFp16 && dtype != BnbRound::kBf16) return cudaErrorInvalidValue;
  if (M < 0 || N < 0 || K < 0 || ldy < N) return cudaErrorInvalidValue;
  if (M == 0 || N == 0) return cudaSuccess;
  if (K == 0) return cudaMemset2DAsync(y, static_cast<size_t>(ldy) * sizeof(float), 0,
                                       static_cast<size_t>(N) * sizeof(float),
                                       static_cast<size_t>(M), stream);
  const cudaDataType_t in = dtype == BnbRound::kFp16 ? CUDA_R_16F : CUDA_R_16BF;
  LtMatmulPlan plan;
  cublasStatus_t s = plan.Build(CUBLAS_COMPUTE_32F, CUDA_R_32F, in, CUDA_R_32F, M, N, K,
                                ldy, ctx.workspace_bytes());
  if (s != CUBLAS_STATUS_SUCCESS) return Finish(ctx, s);
  const float alpha = 1.0f;
  const float beta = 0.0f;
  return Finish(ctx, plan.Run(ctx, &alpha, &beta, w, x, y, stream));
}

cudaError_t Bnb4bitMatMulPrefill(BlasLtContext& ctx, const Bnb4bitView& w, BnbRound cd,
                                 const float* x, int64_t M, uint16_t* x_scratch,
                                 uint16_t* w_scratch, float* y, int64_t ldy, cudaStream_t stream) {
  if (cd != BnbRound::kFp16 && cd != BnbRound::kBf16) return cudaErrorInvalidValue;
  if (M < 0) return cudaErrorInvalidValue;
  cudaError_t e = ConvertF32(x, M * w.cols, cd, x_scratch, stream);
  if (e != cudaSuccess) return e;
  e = Dequantize4bit(w, cd, w_scratch, stream);
  if (e != cudaSuccess) return e;
  return HalfGemmF32Out(ctx, cd, x_scratch, w_scratch, y, ldy, M, w.rows, w.cols, stream);
}

}  // namespace tierserve::cuda
