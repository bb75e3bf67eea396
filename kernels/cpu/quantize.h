// Reference quantizers for GGUF's Q8_0, Q4_0 and Q4_1 blocks, computing
// exactly what ggml's quantize_row_*_ref computes (scale from the block's
// absmax or range, fp16 scale storage, ggml's rounding). They serve tests and
// offline conversion; they are not tuned for speed.
#ifndef TIERSERVE_KERNELS_CPU_QUANTIZE_H_
#define TIERSERVE_KERNELS_CPU_QUANTIZE_H_

#include <cstdint>

namespace tierserve {

// x[0..n) -> n/32 Q8_0 blocks (34 bytes each) at dst.
// d = amax/127, q = round(x/d).
// REQUIRES: n >= 0 and n % 32 == 0.
void QuantizeRowQ8_0(const float* x, void* dst, int64_t n);

// x[0..n) -> n/32 Q4_0 blocks (18 bytes each) at dst.
// d = max/-8 where max is the element of largest magnitude (with its sign),
// q = min(15, trunc(x/d + 8.5)).
// REQUIRES: n >= 0 and n % 32 == 0.
void QuantizeRowQ4_0(const float* x, void* dst, int64_t n);

// x[0..n) -> n/32 Q4_1 blocks (20 bytes each) at dst.
// d = (max-min)/15, m = min, q = min(15, trunc((x-min)/d + 0.5)).
// REQUIRES: n >= 0 and n % 32 == 0.
void QuantizeRowQ4_1(const float* x, void* dst, int64_t n);

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_CPU_QUANTIZE_H_
