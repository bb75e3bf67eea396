// y = x W^T (+ b) over a batch of rows: the layer every weight matrix of a
// model goes through. The weight's precision is the WeightFormat it holds
// (runtime/quant/), so quantized formats plug in here without the
// architectures noticing. ModuleLoader (module_loader.h) makes Linears.
//
// Thread-safety: Forward is const and may run concurrently on different data.
#ifndef TIERSERVE_RUNTIME_MODEL_LINEAR_H_
#define TIERSERVE_RUNTIME_MODEL_LINEAR_H_

#include <cstdint>
#include <memory>

#include "absl/types/span.h"
#include "runtime/base/thread_pool.h"
#include "runtime/format/weight_views.h"
#include "runtime/quant/weight_format.h"
#include "runtime/stream/streamer.h"

namespace tierserve {

class Linear {
 public:
  Linear() = default;
  // `bias` is [out_features] or empty. `group` is the streamer group the
  // weight is staged with when offloaded (Streamer::kResident otherwise).
  Linear(std::unique_ptr<WeightFormat> weight, F32Weight bias,
         Streamer::GroupId group = Streamer::kResident)
      : weight_(std::move(weight)), bias_(std::move(bias)), group_(group) {}

  // y[M, out] = x[M, in] W^T + b. Rows are contiguous (strides in, out).
  void Forward(const float* x, int64_t M, float* y, ThreadPool* pool) const;

  // ys[i] = x W_i^T + b_i for several layers that read the same x (Q, K, V;
  // gate and up): one parallel loop over all their rows, so threads meet once.
  // REQUIRES: the same in_features. (Layers whose out_features are not
  // multiples of the row grain run one after the other instead.)
  static void ForwardShared(absl::Span<const Linear* const> layers, const float* x, int64_t M,
                            absl::Span<float* const> ys, ThreadPool* pool);

  // Row r of W (out_features rows of in_features) as fp32: the lookup of an
  // embedding table, which a tied lm_head shares.
  void Row(int64_t r, float* out) const { weight_->Row(r, out); }
  int64_t in_features() const { return weight_->cols(); }
  int64_t out_features() const { return weight_->rows(); }
  const WeightFormat& weight() const { return *weight_; }
  // Bytes of weights one Forward reads, bias included.
  int64_t WeightBytes() const;
  // The streamer group to acquire before Forward or Row when offloaded.
  Streamer::GroupId group() const { return group_; }

 private:
  // Output features [n0, n1) of Forward, on the calling thread.
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t n0,
                   int64_t n1) const;

  std::unique_ptr<WeightFormat> weight_;  // [out, in]
  F32Weight bias_;                        // [out] or empty
  Streamer::GroupId group_ = Streamer::kResident;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_LINEAR_H_
