#include "kernels/cuda/dequantize.h"

#include "kernels/common/gguf_blocks.h"

namespace tierserve::cuda {
namespace {

// One thread per block of the format.
template <void (*Block)(const uint8_t*, float*), int kElems, int kBytes>
__global__ void DequantizeBlocks(const uint8_t* src, float* dst, int64_t blocks) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b < blocks) Block(src + b * kBytes, dst + b * kElems);
}

template <void (*Block)(const uint8_t*, float*), int kElems, int kBytes>
cudaError_t Launch(const void* src, float* dst, int64_t n, cudaStream_t stream) {
  const int64_t blocks = n / kElems;
  if (blocks == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const unsigned grid = static_cast<unsigned>((blocks + kThreads - 1) / kThreads);
  DequantizeBlocks<Block, kElems, kBytes>
      <<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(src), dst, blocks);
  return cudaGetLastError();
}

}  // namespace

cudaError_t DequantizeRowF32(DType type, const void* src, float* dst, int64_t n,
                             cudaStream_t stream) {
  switch (type) {
    case DType::kQ8_0: return Launch<DequantizeBlockQ8_0, kGgufQK, kQ8_0BlockBytes>(src, dst, n, stream);
    case DType::kQ4_0: return Launch<DequantizeBlockQ4_0, kGgufQK, kQ4_0BlockBytes>(src, dst, n, stream);
    case DType::kQ4_1: return Launch<DequantizeBlockQ4_1, kGgufQK, kQ4_1BlockBytes>(src, dst, n, stream);
    case DType::kQ5_0: return Launch<DequantizeBlockQ5_0, kGgufQK, kQ5_0BlockBytes>(src, dst, n, stream);
    case DType::kQ5_1: return Launch<DequantizeBlockQ5_1, kGgufQK, kQ5_1BlockBytes>(src, dst, n, stream);
    case DType::kQ4_K: return Launch<DequantizeBlockQ4_K, kGgufQK_K, kQ4_KBlockBytes>(src, dst, n, stream);
    case DType::kQ6_K: return Launch<DequantizeBlockQ6_K, kGgufQK_K, kQ6_KBlockBytes>(src, dst, n, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace tierserve::cuda
