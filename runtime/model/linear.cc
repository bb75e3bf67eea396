#include "runtime/model/linear.h"

#include <algorithm>
#include <vector>

namespace tierserve {
namespace {
// Chunks per pool thread for the rows of W. One row of X (decode of one
// sequence) makes every grain cost alike and a loop last microseconds, so an
// even split per thread wastes nothing, and it halves the claims and the
// wait for the slowest chunk: decode on 2 threads +4 to +30% against 4 chunks
// (int8 activations, 6 same-run pairs; fp32 activations +0 to +26%, 4 pairs).
// Longer loops keep the pool's default, which absorbs a thread that the OS
// runs late (one chunk per thread at every M cost prefill of 128 tokens
// 4-22% in 4 of 5 pairs, and batches of 8 and 32 gained nothing clear).
int ChunksPerThread(int64_t M) { return M == 1 ? 1 : ThreadPool::kDefaultChunksPerThread; }
}  // namespace

void Linear::ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y,
                         int64_t n0, int64_t n1) const {
  const int64_t out = out_features();
  weight_->ForwardRows(x, prepared, M, y, out, n0, n1);
  if (!bias_.empty()) {
    const float* b = bias_.data();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) y[m * out + n] += b[n];
  }
}

void Linear::Forward(const float* x, int64_t M, float* y, ThreadPool* pool) const {
  const std::unique_ptr<PreparedInput> prepared = weight_->Prepare(x, M, pool);
  pool->ParallelFor(
      out_features(), [&](int64_t n0, int64_t n1) { ForwardRows(x, prepared.get(), M, y, n0, n1); },
      WeightFormat::kRowGrain, ChunksPerThread(M));
}

void Linear::ForwardShared(absl::Span<const Linear* const> layers, const float* x, int64_t M,
                           absl::Span<float* const> ys, ThreadPool* pool) {
  int64_t total = 0;
  for (const Linear* l : layers) {
    if (l->out_features() % WeightFormat::kRowGrain != 0) {
      // A layer edge off the grain would split another layer's row tiles.
      for (size_t i = 0; i < layers.size(); ++i) layers[i]->Forward(x, M, ys[i], pool);
      return;
    }
    total += l->out_features();
  }
  // One prepared input per kind: the layers read the same x.
  std::vector<std::unique_ptr<PreparedInput>> owned;
  std::vector<const PreparedInput*> prepared(layers.size(), nullptr);
  for (size_t i = 0; i < layers.size(); ++i) {
    size_t j = 0;
    while (j < i && !layers[i]->weight_->SharesPreparedInput(*layers[j]->weight_)) ++j;
    if (j < i) {
      prepared[i] = prepared[j];
    } else {
      owned.push_back(layers[i]->weight_->Prepare(x, M, pool));
      prepared[i] = owned.back().get();
    }
  }
  pool->ParallelFor(
      total,
      [&](int64_t n0, int64_t n1) {
        int64_t offset = 0;
        for (size_t i = 0; i < layers.size(); ++i) {
          const int64_t out = layers[i]->out_features();
          const int64_t a = std::max(n0, offset), b = std::min(n1, offset + out);
          if (a < b) layers[i]->ForwardRows(x, prepared[i], M, ys[i], a - offset, b - offset);
          offset += out;
        }
      },
      WeightFormat::kRowGrain, ChunksPerThread(M));
}

int64_t Linear::WeightBytes() const {
  return weight_->bytes() + static_cast<int64_t>(sizeof(float)) * (bias_.empty() ? 0 : bias_.size());
}

}  // namespace tierserve
