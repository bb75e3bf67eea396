// A read-only set of named tensors backed by model files (safetensors or
// GGUF). Views point into memory-mapped files owned by the store.
//
// Thread-safety: immutable after construction; safe to share.
#ifndef TIERSERVE_RUNTIME_FORMAT_WEIGHT_STORE_H_
#define TIERSERVE_RUNTIME_FORMAT_WEIGHT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/common/dtype.h"

namespace tierserve {

// One tensor as stored in a file. `shape` is in PyTorch order (outermost
// dimension first, the last dimension contiguous), whatever the file's own
// convention; for block types the last dimension is a multiple of the block.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // not necessarily aligned to the element size
  uint64_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t NumElements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class WeightStore {
 public:
  virtual ~WeightStore() = default;

  // The tensor named `name`, or nullptr.
  virtual const TensorView* Find(std::string_view name) const = 0;
  // Every tensor name, sorted.
  virtual std::vector<std::string> Names() const = 0;
  // The file or folder the store was opened from.
  virtual const std::string& Source() const = 0;
};

// Copies `t` into `out` as fp32, converting or dequantizing as needed.
// REQUIRES: out.size() == t.NumElements().
// Fails for dtypes that have no fp32 meaning (BOOL) or that are unsupported.
absl::Status ReadAsF32(const TensorView& t, float* out, int64_t out_elems);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_WEIGHT_STORE_H_
