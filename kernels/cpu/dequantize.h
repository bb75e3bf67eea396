// Row dequantization to fp32 on the CPU, for every storage format that has a
// direct fp32 meaning: F32, F16, BF16 and the GGUF block types.
#ifndef TIERSERVE_KERNELS_CPU_DEQUANTIZE_H_
#define TIERSERVE_KERNELS_CPU_DEQUANTIZE_H_

#include <cstdint>

#include "kernels/common/dtype.h"

namespace tierserve {

// True for the types DequantizeRowF32 accepts.
bool CanDequantizeRowF32(DType type);

// dst[0..n) = fp32 value of the first n elements stored at `src` in `type`.
// `src` needs no alignment. For block types src holds n / BlockElems(type)
// consecutive blocks.
// REQUIRES: CanDequantizeRowF32(type); n >= 0 and a multiple of BlockElems(type).
// A type outside the contract writes NaN, so misuse is loud rather than silent.
void DequantizeRowF32(DType type, const void* src, float* dst, int64_t n);

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_CPU_DEQUANTIZE_H_
