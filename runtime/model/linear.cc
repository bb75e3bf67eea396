#include "runtime/model/linear.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant_matmul.h"
#include "kernels/cpu/repacked_matmul.h"
#include "runtime/base/status_macros.h"

namespace tierserve {

absl::StatusOr<Linear> Linear::Load(const WeightSource& src, const std::string& name,
                                    int64_t in_features, int64_t out_features, bool bias,
                                    bool conv1d) {
  Linear l;
  l.in_ = in_features;
  l.out_ = out_features;
  if (!conv1d) {
    TS_ASSIGN_OR_RETURN(l.blocks_, src.LoadBlocks(name + ".weight", out_features, in_features));
  }
  if (l.blocks_ && cpu::CanRepack(l.blocks_->type(), out_features, in_features)) {
    l.packed_type_ = l.blocks_->type();
    l.packed_.resize(cpu::RepackedBytes(l.packed_type_, out_features, in_features));
    cpu::RepackRows(l.packed_type_, l.blocks_->data(), l.blocks_->row_bytes(), out_features,
                    in_features, l.packed_.data());
    l.blocks_.reset();
  }
  if (!l.blocks_ && l.packed_.empty()) {
    TS_ASSIGN_OR_RETURN(l.weight_, src.Load(name + ".weight", {out_features, in_features}, conv1d));
  }
  if (bias) {
    TS_ASSIGN_OR_RETURN(l.bias_, src.Load(name + ".bias", {out_features}));
  }
  return l;
}

void Linear::Row(int64_t r, float* out) const {
  if (!packed_.empty()) {
    cpu::RepackedRowF32(packed_type_, packed_.data(), in_, r, out);
  } else if (blocks_) {
    DequantizeRowF32(blocks_->type(), blocks_->data() + r * blocks_->row_bytes(), out, in_);
  } else {
    std::memcpy(out, weight_.data() + r * in_, sizeof(float) * in_);
  }
}

void Linear::ForwardRows(const float* x, int64_t M, float* y, int64_t n0, int64_t n1) const {
  const int64_t in = in_, out = out_;
  if (!packed_.empty()) {
    cpu::RepackedMatMulF32(packed_type_, x, in, packed_.data(), y, out, M, in, n0, n1);
  } else if (blocks_) {
    cpu::QuantMatMulF32(blocks_->type(), x, in, blocks_->data(), blocks_->row_bytes(), y, out, M, in,
                        n0, n1);
  } else {
    cpu::MatMulF32(x, in, weight_.data(), y, out, M, in, n0, n1);
  }
  if (!bias_.empty()) {
    const float* b = bias_.data();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) y[m * out + n] += b[n];
  }
}

// Threads take output features in 16-row chunks: the kernels' row tiles stay
// whole and each thread's slice of W is contiguous.
constexpr int64_t kRowGrain = 16;

void Linear::Forward(const float* x, int64_t M, float* y, ThreadPool* pool) const {
  pool->ParallelFor(out_, [&](int64_t n0, int64_t n1) { ForwardRows(x, M, y, n0, n1); }, kRowGrain);
}

void Linear::ForwardShared(absl::Span<const Linear* const> layers, const float* x, int64_t M,
                           absl::Span<float* const> ys, ThreadPool* pool) {
  int64_t total = 0;
  for (const Linear* l : layers) {
    if (l->out_ % kRowGrain != 0) {
      // A layer edge off the grain would split another layer's row tiles.
      for (size_t i = 0; i < layers.size(); ++i) layers[i]->Forward(x, M, ys[i], pool);
      return;
    }
    total += l->out_;
  }
  pool->ParallelFor(
      total,
      [&](int64_t n0, int64_t n1) {
        int64_t offset = 0;
        for (size_t i = 0; i < layers.size(); ++i) {
          const int64_t out = layers[i]->out_;
          const int64_t a = std::max(n0, offset), b = std::min(n1, offset + out);
          if (a < b) layers[i]->ForwardRows(x, M, ys[i], a - offset, b - offset);
          offset += out;
        }
      },
      kRowGrain);
}

int64_t Linear::WeightBytes() const {
  const int64_t w = !packed_.empty() ? static_cast<int64_t>(packed_.size())
                    : blocks_      ? blocks_->bytes()
                                   : static_cast<int64_t>(sizeof(float)) * weight_.size();
  return w + static_cast<int64_t>(sizeof(float)) * (bias_.empty() ? 0 : bias_.size());
}

}  // namespace tierserve
