// GGUF block weights (Q8_0, Q4_0, Q4_1) served as stored: decoded in
// registers by the block kernels while activations stay fp32. Repacked 16
// rows at a time (kernels/cpu/repacked_matmul.h) when the shape allows;
// otherwise kept in the file's row layout.
#ifndef TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
#define TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_

#include <cstdint>
#include <vector>

#include "runtime/format/weight_views.h"
#include "runtime/quant/weight_format.h"

namespace tierserve {

class GgufBlockFormat final : public WeightFormat {
 public:
  explicit GgufBlockFormat(BlockWeight blocks);

  Precision precision() const override;
  int64_t bytes() const override;
  void ForwardRows(const float* x, const PreparedInput* prepared, int64_t M, float* y, int64_t ldy,
                   int64_t n0, int64_t n1) const override;
  void Row(int64_t r, float* out) const override;
  bool ViewsSource() const override { return packed_.empty() && blocks_.is_view(); }

 private:
  DType type_;
  BlockWeight blocks_;          // released once repacked
  std::vector<uint8_t> packed_;  // the repacked rows, or empty
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_QUANT_GGUF_BLOCK_FORMAT_H_
