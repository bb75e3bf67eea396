// y = x W^T (+ b) over a batch of rows: the layer every weight matrix of a
// model goes through. The weight's storage format and residence belong to the
// Linear, so quantized formats and offloaded residence plug in here without
// the architectures noticing.
//
// Thread-safety: Forward is const and may run concurrently on different data.
#ifndef TIERSERVE_RUNTIME_MODEL_LINEAR_H_
#define TIERSERVE_RUNTIME_MODEL_LINEAR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/weight_source.h"

namespace tierserve {

class Linear {
 public:
  Linear() = default;

  // Loads `<name>.weight` as [out, in] (or as a Conv1D [in, out] when
  // `conv1d`), and `<name>.bias` [out] when `bias`. A weight stored in a
  // block format the block kernels serve (GGUF Q8_0, Q4_0, Q4_1) stays in it;
  // any other is converted to fp32.
  static absl::StatusOr<Linear> Load(const WeightSource& src, const std::string& name,
                                     int64_t in_features, int64_t out_features, bool bias,
                                     bool conv1d = false);

  // y[M, out] = x[M, in] W^T + b. Rows are contiguous (strides in, out).
  void Forward(const float* x, int64_t M, float* y, ThreadPool* pool) const;

  // ys[i] = x W_i^T + b_i for several layers that read the same x (Q, K, V;
  // gate and up): one parallel loop over all their rows, so threads meet once.
  // REQUIRES: the same in_features. (Layers whose out_features are not
  // multiples of 16 run one after the other instead.)
  static void ForwardShared(absl::Span<const Linear* const> layers, const float* x, int64_t M,
                            absl::Span<float* const> ys, ThreadPool* pool);

  // Row r of W (out_features rows of in_features) as fp32: the lookup of an
  // embedding table, which a tied lm_head shares.
  void Row(int64_t r, float* out) const;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // Bytes of weights one Forward reads.
  int64_t WeightBytes() const;

 private:
  // Output features [n0, n1) of Forward, on the calling thread.
  void ForwardRows(const float* x, int64_t M, float* y, int64_t n0, int64_t n1) const;

  int64_t in_ = 0;
  int64_t out_ = 0;
  F32Weight weight_;                  // [out, in], unless blocks_ holds it
  std::optional<BlockWeight> blocks_;  // [out, in] in a GGUF block format
  // blocks_ repacked 16 rows at a time (kernels/cpu/repacked_matmul.h), when
  // the shape allows; then blocks_ is released.
  std::vector<uint8_t> packed_;
  DType packed_type_ = DType::kF32;
  F32Weight bias_;                    // [out] or empty
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_LINEAR_H_
