#include "runtime/model/linear.h"

#include "kernels/cpu/matmul.h"
#include "runtime/base/status_macros.h"

namespace tierserve {

absl::StatusOr<Linear> Linear::Load(const WeightSource& src, const std::string& name,
                                    int64_t in_features, int64_t out_features, bool bias,
                                    bool conv1d) {
  Linear l;
  l.in_ = in_features;
  l.out_ = out_features;
  TS_ASSIGN_OR_RETURN(l.weight_, src.Load(name + ".weight", {out_features, in_features}, conv1d));
  if (bias) {
    TS_ASSIGN_OR_RETURN(l.bias_, src.Load(name + ".bias", {out_features}));
  }
  return l;
}

Linear Linear::FromWeight(F32Weight weight) {
  Linear l;
  l.out_ = weight.shape()[0];
  l.in_ = weight.shape()[1];
  l.weight_ = std::move(weight);
  return l;
}

void Linear::Forward(const float* x, int64_t M, float* y, ThreadPool* pool) const {
  const float* w = weight_.data();
  const int64_t in = in_, out = out_;
  // Split the output features among threads; 16-row chunks keep the kernel's
  // 4-row tiles whole and each thread's slice of W contiguous.
  pool->ParallelFor(
      out,
      [&](int64_t n0, int64_t n1) {
        cpu::MatMulF32(x, in, w, y, out, M, in, n0, n1);
        if (!bias_.empty()) {
          const float* b = bias_.data();
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = n0; n < n1; ++n) y[m * out + n] += b[n];
        }
      },
      /*grain=*/16);
}

int64_t Linear::WeightBytes() const {
  return static_cast<int64_t>(sizeof(float)) * (weight_.size() + (bias_.empty() ? 0 : bias_.size()));
}

}  // namespace tierserve
