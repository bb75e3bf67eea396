// GGUF v3 reader (v2 accepted too): metadata key/values and tensor infos over
// a memory-mapped file. Every length, count and offset is checked against the
// bytes that remain before it is used; a malformed file is an error naming
// the file and the problem, never an out-of-bounds read.
//
// Thread-safety: immutable after Open(); safe to share.
#ifndef TIERSERVE_RUNTIME_FORMAT_GGUF_H_
#define TIERSERVE_RUNTIME_FORMAT_GGUF_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/format/weight_store.h"

namespace tierserve {

// A metadata value. Arrays hold homogeneous elements; nested arrays are
// accepted and kept as GgufArray of GgufArray. Unsigned integer types are
// held as uint64_t, signed ones as int64_t, F32 and F64 as double.
struct GgufValue;
using GgufArray = std::vector<GgufValue>;
struct GgufValue {
  enum class Type : uint32_t {
    kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6,
    kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
  };
  Type type = Type::kU8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;
};

class GgufFile : public WeightStore {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // The same checks over a GGUF image already in memory; `source` names it in
  // messages. The tensors point into `bytes`, which must outlive the result.
  static absl::StatusOr<std::unique_ptr<GgufFile>> FromBytes(absl::Span<const uint8_t> bytes,
                                                             const std::string& source);

  uint32_t version() const;
  // `general.alignment`, or 32 when absent.
  uint64_t alignment() const;
  // File offset of the tensor data section; tensor offsets count from here.
  uint64_t data_offset() const;
  const std::map<std::string, GgufValue, std::less<>>& metadata() const;

  // Typed accessors. A present key of another type is an error naming the
  // key, the type found and the type expected; an absent key is NotFound.
  // Integer getters accept any integer type whose value fits.
  absl::StatusOr<uint64_t> GetUint(std::string_view key) const;
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;  // F32 or F64
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  bool Has(std::string_view key) const;

  // WeightStore: tensors under their GGUF names (`blk.0.attn_q.weight`),
  // shapes reversed to PyTorch order.
  const TensorView* Find(std::string_view name) const override;
  std::vector<std::string> Names() const override;
  const std::string& Source() const override;

  ~GgufFile() override;

 private:
  GgufFile();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_GGUF_H_
