// Builds GGUF files for tests: well-formed by default, with low-level entry
// points (raw type ids, explicit offsets, hand-encoded fields) for making
// specific malformations. It checks nothing on purpose, and is not meant to
// write files for production.
//
// Thread-safety: none; use from one thread.
#ifndef TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_WRITER_H_
#define TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_WRITER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/common/dtype.h"
#include "runtime/format/gguf.h"

namespace tierserve {

// Little-endian field encoders, for hand-made headers.
void AppendU32(std::string* out, uint32_t v);
void AppendU64(std::string* out, uint64_t v);
void AppendGgufString(std::string* out, std::string_view s);  // u64 length + bytes

// The ggml type id of `dtype`, or nullopt for types GGUF has no id for
// (U8, BOOL). Kept separate from the reader's table so tests check it.
std::optional<uint32_t> GgmlTypeIdForTest(DType dtype);

// A serialized file and where its parts landed.
struct GgufImage {
  std::string bytes;
  uint64_t data_offset = 0;  // start of the tensor data section
  uint64_t data_end = 0;     // one past the last tensor byte (before the final padding)
};

class GgufWriter {
 public:
  void set_version(uint32_t version) { version_ = version; }

  // Metadata entries, written in the order added (duplicates included).
  void AddU8(std::string key, uint8_t v);
  void AddI8(std::string key, int8_t v);
  void AddU16(std::string key, uint16_t v);
  void AddI16(std::string key, int16_t v);
  void AddU32(std::string key, uint32_t v);
  void AddI32(std::string key, int32_t v);
  void AddU64(std::string key, uint64_t v);
  void AddI64(std::string key, int64_t v);
  void AddF32(std::string key, float v);
  void AddF64(std::string key, double v);
  void AddBool(std::string key, bool v);
  void AddString(std::string key, std::string_view v);
  void AddStringArray(std::string key, const std::vector<std::string>& v);
  void AddF32Array(std::string key, const std::vector<float>& v);
  void AddI32Array(std::string key, const std::vector<int32_t>& v);
  // Any value, nested arrays included. An array's element type is its first
  // element's; an empty array is written as an array of u8.
  void AddValue(std::string key, const GgufValue& v);
  // An entry whose type and value bytes are given verbatim.
  void AddRawKv(std::string key, uint32_t type, std::string_view value_bytes);

  // Adds `general.alignment` (u32) and lays the data out with it (a zero
  // alignment is written but the layout falls back to 32).
  void SetAlignment(uint32_t alignment);

  // A tensor of `dtype`, `shape` in PyTorch order, stored bytes `bytes`, at
  // the next aligned offset after the tensors before it.
  void AddTensor(std::string name, DType dtype, const std::vector<int64_t>& shape,
                 std::string_view bytes);
  // Low level: ggml type id and ggml-order dims as given, and the data offset
  // (relative to the data section) if set; the bytes are written there even
  // if they overlap another tensor's.
  void AddRawTensor(std::string name, uint32_t ggml_type, std::vector<uint64_t> ggml_dims,
                    std::string_view bytes, std::optional<uint64_t> offset = std::nullopt);

  // Fails only for a DType that has no ggml id.
  absl::StatusOr<GgufImage> Build() const;
  absl::Status WriteTo(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    uint32_t ggml_type;
    std::vector<uint64_t> dims;
    std::string bytes;
    std::optional<uint64_t> offset;
  };

  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  uint64_t kv_count_ = 0;
  std::string kv_bytes_;
  std::vector<Tensor> tensors_;
  absl::Status error_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_WRITER_H_
