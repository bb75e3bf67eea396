// Builds safetensors files (and sharded checkpoints) for tests, laid out as
// the reference writer does: tensors sorted by element size (largest first)
// then name, packed back to back, the JSON header padded with spaces to a
// multiple of 8. It checks nothing, so a tensor given the wrong number of
// bytes makes a malformed file on purpose. Not meant for production output.
//
// Thread-safety: none; use from one thread.
#ifndef TIERSERVE_RUNTIME_FORMAT_TESTING_SAFETENSORS_WRITER_H_
#define TIERSERVE_RUNTIME_FORMAT_TESTING_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "kernels/common/dtype.h"

namespace tierserve {

class SafetensorsWriter {
 public:
  // An entry of `__metadata__`.
  void AddMetadata(std::string key, std::string value);

  // A tensor with PyTorch-order `shape`; `bytes` are stored as given.
  // GGUF block types have no safetensors name and are written as "Q4_0" etc.
  void AddTensor(std::string name, DType dtype, std::vector<int64_t> shape, std::string_view bytes);
  // Any dtype string ("F8_E4M3", or an invalid one).
  void AddRawTensor(std::string name, std::string dtype, std::vector<int64_t> shape,
                    std::string_view bytes);

  std::string Serialize() const;
  absl::Status WriteTo(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Tensor> tensors_;
};

// [u64 little-endian length of header_json][header_json][buffer], verbatim.
std::string FrameSafetensors(std::string_view header_json, std::string_view buffer);

// Writes `dir`/model.safetensors.index.json mapping each tensor to its shard.
absl::Status WriteSafetensorsIndex(const std::string& dir,
                                   const std::map<std::string, std::string>& weight_map);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_TESTING_SAFETENSORS_WRITER_H_
