// Weights as the loader hands them out: fp32 matrices and GGUF block
// matrices, each a view into a mapped model file or an owned copy.
#ifndef TIERSERVE_RUNTIME_FORMAT_WEIGHT_VIEWS_H_
#define TIERSERVE_RUNTIME_FORMAT_WEIGHT_VIEWS_H_

#include <cstdint>
#include <vector>

#include "kernels/common/dtype.h"

namespace tierserve {

class WeightSource;

// fp32 weights: a view into a mapped file when the stored bytes are already
// fp32 in the right layout and aligned, else an owned, converted copy.
class F32Weight {
 public:
  F32Weight() = default;
  const float* data() const { return data_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  bool empty() const { return data_ == nullptr; }
  // True when the data are the mapped file's own bytes, not a copy.
  bool is_view() const { return data_ != nullptr && owned_.empty(); }

 private:
  friend class WeightSource;
  const float* data_ = nullptr;
  std::vector<int64_t> shape_;
  std::vector<float> owned_;
};

// A weight matrix kept in the GGUF block format it is stored in: `rows` rows
// of `cols / 32` blocks each, `row_bytes` apart. A view into the mapped file,
// or an owned copy when rows had to be reordered.
class BlockWeight {
 public:
  DType type() const { return type_; }
  const uint8_t* data() const { return data_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_bytes() const { return row_bytes_; }
  int64_t bytes() const { return rows_ * row_bytes_; }
  // True when the data are the mapped file's own bytes, not a copy.
  bool is_view() const { return data_ != nullptr && owned_.empty(); }

 private:
  friend class WeightSource;
  DType type_ = DType::kF32;
  const uint8_t* data_ = nullptr;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  int64_t row_bytes_ = 0;
  std::vector<uint8_t> owned_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_WEIGHT_VIEWS_H_
