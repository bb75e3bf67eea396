// Causal attention of one sequence position over its KV cache on the CPU,
// fused: the query heads of a KV group share every key and value read (GQA),
// the softmax is computed online (one pass over K and V, a tile of 16
// positions at a time), and a long row's positions come as spans (kernels/
// common/attention.h) that threads can share, merged afterwards. Keys are
// stored transposed, so a tile's 16 scores of a head are 16 lanes of one
// sum over the head's dimensions, no horizontal adds; fp16 keys and values
// are widened in registers.
//
// Thread-safety: reentrant.
#ifndef TIERSERVE_KERNELS_CPU_ATTENTION_H_
#define TIERSERVE_KERNELS_CPU_ATTENTION_H_

#include <cstdint>

#include "kernels/common/attention.h"
#include "kernels/cpu/cpu_features.h"

namespace tierserve::cpu {

// The partial attention of the query heads of num_kv consecutive KV heads
// (group query heads each: num_kv * group rows of head_dim floats from q,
// KV head g serving query heads g * group .. g * group + group - 1) over span
// `span` of positions [0, n). KV head g's rows start at kv.offset +
// g * head_dim. Scores are q . k * scale. Writes query head h's partial at
// partials + h * partial_stride. A head's results do not depend on num_kv.
// kv.dtype is kF32 or kF16.
// REQUIRES: 0 <= span < AttentionSpans(n).
void AttendSpan(const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale, const KvView& kv,
                int64_t n, int64_t span, float* partials, int64_t partial_stride);

// The same on a given SIMD path (tests compare the paths: all give the
// same bits). REQUIRES: CpuPathSupported(path).
void AttendSpanOnPath(CpuPath path, const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale,
                      const KvView& kv, int64_t n, int64_t span, float* partials, int64_t partial_stride);

// Merges the partials of one query head's spans (num_spans consecutive
// partials, in span order) into its output: head_dim floats.
void MergeSpans(const float* partials, int64_t num_spans, int64_t head_dim, float* out);

// exp(x) for each of n floats in place, as AttendSpan computes it (within
// 2 ulp of the correctly rounded value for x >= -87; 0 below, exp(0) = 1).
void AttentionExp(float* x, int64_t n);

}  // namespace tierserve::cpu

#endif  // TIERSERVE_KERNELS_CPU_ATTENTION_H_
