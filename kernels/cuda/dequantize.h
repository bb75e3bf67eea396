// GGUF block dequantization on a CUDA device. The per-block math is the
// shared host/device code of kernels/common/gguf_blocks.h, so the CPU tests of
// those functions cover what this kernel computes.
#ifndef TIERSERVE_KERNELS_CUDA_DEQUANTIZE_H_
#define TIERSERVE_KERNELS_CUDA_DEQUANTIZE_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/dtype.h"

namespace tierserve::cuda {

// dst[0..n) = fp32 values of the n elements stored at device pointer `src`
// in `type` (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K or Q6_K), on `stream`.
// REQUIRES: n a multiple of BlockElems(type). Returns cudaErrorInvalidValue
// for other types.
cudaError_t DequantizeRowF32(DType type, const void* src, float* dst, int64_t n,
                             cudaStream_t stream);

}  // namespace tierserve::cuda

#endif  // TIERSERVE_KERNELS_CUDA_DEQUANTIZE_H_
