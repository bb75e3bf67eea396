// What every device's attention kernel agrees on, so that a sequence's
// results do not depend on how its work was cut: the online softmax updates
// tiles of kAttentionTile positions and long rows are split into spans of
// kAttentionSpan positions, both at fixed absolute positions, whatever the
// cache's block size, the batch, the thread count, or which thread ran which
// span. A span's partial result per query head is its running max, its sum of
// exponentials and its unnormalized output; a head's spans are merged in
// span order.
#ifndef TIERSERVE_KERNELS_COMMON_ATTENTION_H_
#define TIERSERVE_KERNELS_COMMON_ATTENTION_H_

#include <cstdint>

#include "kernels/common/dtype.h"
#include "kernels/common/host_device.h"

namespace tierserve {

// Positions per online-softmax update.
inline constexpr int64_t kAttentionTile = 16;
// Positions per partial result; a multiple of kAttentionTile.
inline constexpr int64_t kAttentionSpan = 256;
static_assert(kAttentionSpan % kAttentionTile == 0);

// The keys and values of one KV head over a sequence's positions, stored in
// blocks of block_tokens positions as elements of `dtype` (kF32 or kF16).
// A block holds kv_dim-wide rows of every KV head: its keys transposed, so
// that the keys of consecutive positions are adjacent (dimension i of
// position r at element i * block_tokens + r), its values by position
// (element r * kv_dim + i). This head's dimensions are offset .. offset +
// head_dim - 1 of a row; position p is row p % block_tokens of block
// p / block_tokens.
struct KvView {
  const void* const* key_blocks = nullptr;
  const void* const* value_blocks = nullptr;
  int64_t block_tokens = 0;
  int64_t kv_dim = 0;  // elements of a position's key (and value) row
  int64_t offset = 0;  // this head's first dimension in a row
  DType dtype = DType::kF32;
};

// Bytes of one stored key or value element; 0 for a type the KV cache
// cannot hold.
TS_HD int64_t KvElementBytes(DType t) { return t == DType::kF32 ? 4 : t == DType::kF16 ? 2 : 0; }

// Floats of one query head's partial result over a span: [max, sum, out[head_dim]].
TS_HD int64_t AttentionPartialFloats(int64_t head_dim) { return head_dim + 2; }

// Spans of a row that attends to positions [0, n).
TS_HD int64_t AttentionSpans(int64_t n) { return (n + kAttentionSpan - 1) / kAttentionSpan; }

}  // namespace tierserve

#endif  // TIERSERVE_KERNELS_COMMON_ATTENTION_H_
