// GGUF layout (all integers little-endian; "string" = u64 length + bytes):
//
//   u32 magic "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 kv_count
//   kv_count x  { string key | u32 value_type | value }
//       value: fixed-size scalar, string, or
//              array = { u32 elem_type | u64 count | count x value }
//   tensor_count x { string name | u32 n_dims | u64 dims[n_dims] (ggml order,
//                    ne0 fastest) | u32 ggml_type | u64 offset }
//   zero padding to `general.alignment` (default 32)
//   tensor data: each tensor at data_offset + offset, offset % alignment == 0
//
// The parser walks a cursor through the mapped bytes. Every count read from
// the file is checked against the bytes left before anything is allocated
// for it, so a lying header costs an error message, not memory.
#include "runtime/format/gguf_parser.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/common/dtype.h"
#include "runtime/base/mapped_file.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"
#include "runtime/format/weight_store.h"

namespace tierserve {

std::string GgufValueTypeName(uint32_t t) {
  static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  if (t < std::size(kNames)) return kNames[t];
  return absl::StrCat("unknown type ", t);
}

namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader loads little-endian fields with memcpy");

using VT = GgufValue::Type;

// abseil here is built with its own string_view type; StrCat takes that one.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The spec's limits on key and tensor name lengths.
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 64;
constexpr uint32_t kMaxDims = 4;
// Nesting beyond this is not seen in practice and would let a file of
// array headers drive the recursion arbitrarily deep.
constexpr int kMaxArrayDepth = 8;
// Each parsed value costs ~48 bytes of memory, while a u8 array element
// costs 1 byte of file. Real files carry well under a million values (the
// largest vocabularies with scores, types and merges); this cap bounds the
// worst case to a few hundred megabytes.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 23;
// Smallest possible encodings, used to reject counts the file cannot hold.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;              // len, key, type, u8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;  // len, name, n_dims, type, offset

bool IsValueType(uint32_t t) { return t <= static_cast<uint32_t>(VT::kF64); }

// Bytes taken by the smallest value of each type, indexed by type id (a
// string's length field; an array's element type and count).
constexpr uint64_t kMinValueBytes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};
static_assert(std::size(kMinValueBytes) == static_cast<size_t>(VT::kF64) + 1);

// ggml type names by id, for messages; ids 4, 5 and 31-33 were removed.
const char* GgmlTypeName(uint32_t id) {
  // clang-format off
  static constexpr const char* kNames[] = {
      "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
      "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
      "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
      "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0"};
  // clang-format on
  if (id < std::size(kNames)) return kNames[id];
  if (id == 39) return "MXFP4";
  return "unknown";
}

std::optional<DType> DTypeFromGgml(uint32_t id) {
  switch (id) {
    case 0: return DType::kF32;
    case 1: return DType::kF16;
    case 2: return DType::kQ4_0;
    case 3: return DType::kQ4_1;
    case 6: return DType::kQ5_0;
    case 7: return DType::kQ5_1;
    case 8: return DType::kQ8_0;
    case 12: return DType::kQ4_K;
    case 14: return DType::kQ6_K;
    case 24: return DType::kI8;
    case 25: return DType::kI16;
    case 26: return DType::kI32;
    case 27: return DType::kI64;
    case 28: return DType::kF64;
    case 30: return DType::kBF16;
    default: return std::nullopt;
  }
}

bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

// A read position over the mapped bytes. Reads fail (return false, leave the
// position unchanged) when too few bytes remain.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}

  uint64_t offset() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  bool Read(T* v) {
    if (remaining() < sizeof(T)) return false;
    memcpy(v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  bool Bytes(uint64_t n, const uint8_t** p) {
    if (remaining() < n) return false;
    *p = data_ + pos_;
    pos_ += n;
    return true;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// One tensor info as read, before it becomes a TensorView.
struct RawTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order
  uint32_t ggml_type = 0;
  DType dtype = DType::kF32;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  uint64_t begin = 0;  // file offsets of the data
  uint64_t end = 0;
};

// Reads the header, metadata and tensor infos of a mapped GGUF file. One use
// per file.
class Parser {
 public:
  explicit Parser(GgufContents* out) : out_(out), cur_(out->data, out->size) {}

  absl::Status Parse();

 private:
  absl::Status Error(absl::string_view msg) const {
    return absl::InvalidArgumentError(absl::StrCat(out_->path, ": ", msg));
  }
  absl::Status Unsupported(absl::string_view msg) const {
    return absl::UnimplementedError(absl::StrCat(out_->path, ": ", msg));
  }
  absl::Status Truncated(absl::string_view what, uint64_t need) const {
    return Error(absl::StrCat("truncated file: ", what, " needs ", need, " bytes at offset ",
                              cur_.offset(), " but only ", cur_.remaining(), " remain"));
  }
  // "metadata key 'k'" plus the array indices being read, for messages.
  std::string Where() const {
    std::string s = absl::StrCat("metadata key '", key_, "'");
    for (uint64_t i : elem_path_) absl::StrAppend(&s, "[", i, "]");
    return s;
  }

  absl::Status ReadHeader(uint64_t* tensor_count, uint64_t* kv_count);
  absl::StatusOr<std::string> ReadString(absl::string_view what, uint64_t max_len);
  absl::Status ReadValue(VT type, int depth, GgufValue* out);
  // A fixed-size value stored as T, held in the variant as Held.
  template <typename T, typename Held>
  absl::Status ReadScalar(GgufValue* out) {
    T v;
    if (!cur_.Read(&v)) return Truncated(absl::StrCat("the value of ", Where()), sizeof(T));
    out->value = static_cast<Held>(v);
    return absl::OkStatus();
  }
  absl::Status ReadArray(int depth, GgufValue* out);
  absl::Status ReadAlignment();
  absl::Status ReadTensorInfo(uint64_t index, RawTensor* t);
  absl::Status PlaceTensor(RawTensor* t);

  GgufContents* out_;  // what is being filled
  Cursor cur_;
  std::string key_;                  // the metadata key being read
  std::vector<uint64_t> elem_path_;  // array indices within it
  uint64_t values_read_ = 0;
};

absl::Status Parser::ReadHeader(uint64_t* tensor_count, uint64_t* kv_count) {
  const uint8_t* magic;
  if (!cur_.Bytes(4, &magic)) return Truncated("the magic number \"GGUF\"", 4);
  if (memcmp(magic, "GGUF", 4) != 0) {
    if (memcmp(magic, "FUGG", 4) == 0) {
      return Unsupported(
          "the magic number is byte-swapped (\"FUGG\"): this is a big-endian GGUF file, and "
          "only little-endian files are supported");
    }
    return Error(absl::StrFormat(
        "not a GGUF file: it starts with bytes %02x %02x %02x %02x, expected \"GGUF\" "
        "(47 47 55 46)",
        magic[0], magic[1], magic[2], magic[3]));
  }
  uint32_t version;
  if (!cur_.Read(&version)) return Truncated("the version field", 4);
  out_->version = version;
  if (version != 2 && version != 3) {
    const uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3) {
      return Unsupported(absl::StrFormat(
          "the version field reads 0x%08x, which is version %u byte-swapped: this is a "
          "big-endian GGUF file, and only little-endian files are supported",
          version, swapped));
    }
    if (version == 1) {
      return Unsupported(
          "GGUF version 1 is not supported (versions 2 and 3 are); convert the model again "
          "with a current llama.cpp");
    }
    return Unsupported(
        absl::StrCat("unsupported GGUF version ", version, " (versions 2 and 3 are supported)"));
  }
  if (!cur_.Read(tensor_count)) return Truncated("the tensor count", 8);
  if (!cur_.Read(kv_count)) return Truncated("the metadata count", 8);
  if (*kv_count > cur_.remaining() / kMinKvBytes) {
    return Error(absl::StrCat(
        "metadata count ", *kv_count, " is impossible: each entry takes at least ", kMinKvBytes,
        " bytes and only ", cur_.remaining(), " bytes follow (a truncated or corrupt file)"));
  }
  if (*tensor_count > cur_.remaining() / kMinTensorInfoBytes) {
    return Error(absl::StrCat("tensor count ", *tensor_count,
                              " is impossible: each tensor info takes at least ",
                              kMinTensorInfoBytes, " bytes and only ", cur_.remaining(),
                              " bytes follow (a truncated or corrupt file)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Parser::ReadString(absl::string_view what, uint64_t max_len) {
  uint64_t len;
  if (!cur_.Read(&len)) return Truncated(absl::StrCat("the length of ", what), 8);
  if (len > max_len) {
    return Error(absl::StrCat(what, " is ", len, " bytes long; at most ", max_len, " are allowed"));
  }
  const uint8_t* p;
  if (!cur_.Bytes(len, &p)) return Truncated(what, len);
  return std::string(reinterpret_cast<const char*>(p), len);
}

absl::Status Parser::ReadValue(VT type, int depth, GgufValue* out) {
  if (++values_read_ > kMaxMetadataValues) {
    return Error(absl::StrCat("the metadata holds more than ", kMaxMetadataValues, " values (at ",
                              Where(), "); this reader's limit"));
  }
  out->type = type;
  switch (type) {
    case VT::kU8: return ReadScalar<uint8_t, uint64_t>(out);
    case VT::kI8: return ReadScalar<int8_t, int64_t>(out);
    case VT::kU16: return ReadScalar<uint16_t, uint64_t>(out);
    case VT::kI16: return ReadScalar<int16_t, int64_t>(out);
    case VT::kU32: return ReadScalar<uint32_t, uint64_t>(out);
    case VT::kI32: return ReadScalar<int32_t, int64_t>(out);
    case VT::kU64: return ReadScalar<uint64_t, uint64_t>(out);
    case VT::kI64: return ReadScalar<int64_t, int64_t>(out);
    case VT::kF32: return ReadScalar<float, double>(out);
    case VT::kF64: return ReadScalar<double, double>(out);
    case VT::kBool: {
      uint8_t v;
      if (!cur_.Read(&v)) return Truncated(absl::StrCat("the value of ", Where()), 1);
      if (v > 1) {
        return Error(
            absl::StrCat(Where(), " is a bool stored as ", int{v}, "; only 0 and 1 are allowed"));
      }
      out->value = v == 1;
      break;
    }
    case VT::kString: {
      // Strings are bounded by the bytes that follow, so no extra cap.
      TS_ASSIGN_OR_RETURN(std::string s, ReadString(absl::StrCat("the string value of ", Where()),
                                                    std::numeric_limits<uint64_t>::max()));
      out->value = std::move(s);
      break;
    }
    case VT::kArray: return ReadArray(depth, out);
  }
  return absl::OkStatus();
}

absl::Status Parser::ReadArray(int depth, GgufValue* out) {
  if (depth >= kMaxArrayDepth) {
    return Error(absl::StrCat(Where(), " nests arrays more than ", kMaxArrayDepth, " deep"));
  }
  uint32_t elem_type;
  if (!cur_.Read(&elem_type)) return Truncated(absl::StrCat("the element type of ", Where()), 4);
  if (!IsValueType(elem_type)) {
    return Error(
        absl::StrCat(Where(), " is an array of unknown value type ", elem_type, " (known: 0..12)"));
  }
  uint64_t count;
  if (!cur_.Read(&count)) return Truncated(absl::StrCat("the element count of ", Where()), 8);
  const VT et = static_cast<VT>(elem_type);
  const uint64_t min_bytes = kMinValueBytes[elem_type];
  if (count > cur_.remaining() / min_bytes) {
    return Error(absl::StrCat(Where(), " claims ", count, " elements of type ",
                              GgufValueTypeName(elem_type), " (at least ", min_bytes,
                              " bytes each) but only ", cur_.remaining(), " bytes follow"));
  }
  if (count > kMaxMetadataValues - values_read_) {
    return Error(absl::StrCat(Where(), " claims ", count,
                              " elements, more than this reader's limit of ", kMaxMetadataValues,
                              " metadata values"));
  }
  GgufArray arr;
  arr.reserve(count);
  elem_path_.push_back(0);
  for (uint64_t i = 0; i < count; ++i) {
    elem_path_.back() = i;
    arr.emplace_back();
    TS_RETURN_IF_ERROR(ReadValue(et, depth + 1, &arr.back()));
  }
  elem_path_.pop_back();
  out->value = std::move(arr);
  return absl::OkStatus();
}

absl::Status Parser::ReadAlignment() {
  auto it = out_->metadata.find("general.alignment");
  if (it == out_->metadata.end()) return absl::OkStatus();
  const GgufValue& v = it->second;
  constexpr absl::string_view kAllowed = "; it must be a non-zero multiple of 8 that fits a u32";
  uint64_t a = 0;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) {
    a = *u;
  } else if (const auto* s = std::get_if<int64_t>(&v.value)) {
    if (*s < 0) return Error(absl::StrCat("general.alignment is ", *s, kAllowed));
    a = static_cast<uint64_t>(*s);
  } else {
    return Error(absl::StrCat("general.alignment has type ",
                              GgufValueTypeName(static_cast<uint32_t>(v.type)),
                              "; expected an integer (u32)"));
  }
  if (a == 0 || a % 8 != 0 || a > std::numeric_limits<uint32_t>::max()) {
    return Error(absl::StrCat("general.alignment is ", a, kAllowed));
  }
  out_->alignment = a;
  return absl::OkStatus();
}

absl::Status Parser::ReadTensorInfo(uint64_t index, RawTensor* t) {
  TS_ASSIGN_OR_RETURN(t->name,
                      ReadString(absl::StrCat("the name of tensor ", index), kMaxTensorNameBytes));
  if (t->name.empty()) return Error(absl::StrCat("tensor ", index, " has an empty name"));
  const std::string what = absl::StrCat("tensor '", t->name, "'");
  uint32_t n_dims;
  if (!cur_.Read(&n_dims)) return Truncated(absl::StrCat("the dimension count of ", what), 4);
  if (n_dims > kMaxDims) {
    return Error(
        absl::StrCat(what, " has ", n_dims, " dimensions; at most ", kMaxDims, " are allowed"));
  }
  t->dims.resize(n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (!cur_.Read(&t->dims[d])) return Truncated(absl::StrCat("dimension ", d, " of ", what), 8);
    if (t->dims[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(absl::StrCat(what, " dimension ", d, " is ", t->dims[d], ", beyond int64"));
    }
  }
  if (!cur_.Read(&t->ggml_type)) return Truncated(absl::StrCat("the type of ", what), 4);
  const std::optional<DType> dtype = DTypeFromGgml(t->ggml_type);
  if (!dtype.has_value()) {
    return Unsupported(absl::StrCat(
        what, " has ggml type ", t->ggml_type, " (", GgmlTypeName(t->ggml_type),
        "), which is not supported; supported types: F32, F16, BF16, F64, I8, I16, I32, I64, "
        "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K"));
  }
  t->dtype = *dtype;
  if (!cur_.Read(&t->offset)) return Truncated(absl::StrCat("the data offset of ", what), 8);
  return absl::OkStatus();
}

// Computes the byte size and file range of `t` and checks they lie in the file.
absl::Status Parser::PlaceTensor(RawTensor* t) {
  const std::string what = absl::StrCat("tensor '", t->name, "' (", Sv(DTypeName(t->dtype)), ")");
  const uint64_t blk = static_cast<uint64_t>(BlockElems(t->dtype));
  const uint64_t ne0 = t->dims.empty() ? 1 : t->dims[0];
  if (ne0 % blk != 0) {
    return Error(absl::StrCat(what, " has first ggml dimension ", ne0,
                              ", which is not a multiple of the block size ", blk));
  }
  // The product of the non-zero dims must fit int64, so that the element
  // count cannot overflow in whatever order a caller multiplies the shape.
  uint64_t nonzero_elems = 1;
  uint64_t nbytes = 0;
  bool ok = CheckedMul(ne0 / blk, static_cast<uint64_t>(BlockBytes(t->dtype)), &nbytes);
  for (size_t d = 0; d < t->dims.size() && ok; ++d) {
    if (t->dims[d] != 0) ok = CheckedMul(nonzero_elems, t->dims[d], &nonzero_elems);
    if (d > 0) ok = ok && CheckedMul(nbytes, t->dims[d], &nbytes);
  }
  if (!ok || nonzero_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Error(absl::StrCat(what, " has dimensions [", absl::StrJoin(t->dims, ", "),
                              "] whose size overflows 64 bits"));
  }
  if (t->offset % out_->alignment != 0) {
    return Error(absl::StrCat(what, " has data offset ", t->offset,
                              ", which is not a multiple of the alignment ", out_->alignment));
  }
  t->nbytes = nbytes;
  const uint64_t size = out_->size;
  if (!CheckedAdd(out_->data_offset, t->offset, &t->begin) ||
      !CheckedAdd(t->begin, nbytes, &t->end) || t->end > size) {
    return Error(absl::StrCat(what, " needs ", nbytes, " bytes at data offset ", t->offset,
                              " (file offset ", out_->data_offset, " + ", t->offset,
                              "), which runs past the end of the file (", size, " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status Parser::Parse() {
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
  TS_RETURN_IF_ERROR(ReadHeader(&tensor_count, &kv_count));

  for (uint64_t i = 0; i < kv_count; ++i) {
    TS_ASSIGN_OR_RETURN(key_,
                        ReadString(absl::StrCat("the key of metadata entry ", i), kMaxKeyBytes));
    if (key_.empty()) return Error(absl::StrCat("metadata entry ", i, " has an empty key"));
    if (out_->metadata.contains(key_)) {
      return Error(absl::StrCat("metadata key '", key_, "' appears twice"));
    }
    uint32_t type;
    if (!cur_.Read(&type)) return Truncated(absl::StrCat("the value type of ", Where()), 4);
    if (!IsValueType(type)) {
      return Error(absl::StrCat(Where(), " has unknown value type ", type, " (known: 0..12)"));
    }
    GgufValue value;
    TS_RETURN_IF_ERROR(ReadValue(static_cast<VT>(type), 0, &value));
    out_->metadata.emplace(key_, std::move(value));
  }
  TS_RETURN_IF_ERROR(ReadAlignment());

  std::vector<RawTensor> raw(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    TS_RETURN_IF_ERROR(ReadTensorInfo(i, &raw[i]));
    if (!out_->by_name.emplace(raw[i].name, i).second) {
      return Error(absl::StrCat("tensor name '", raw[i].name, "' appears twice"));
    }
  }

  const uint64_t a = out_->alignment;
  const uint64_t end_of_infos = cur_.offset();
  if (!CheckedAdd(end_of_infos, (a - end_of_infos % a) % a, &out_->data_offset)) {
    return Error("the tensor data offset overflows 64 bits");
  }
  if (tensor_count > 0 && out_->data_offset > out_->size) {
    return Error(absl::StrCat("truncated file: the tensor data section would start at offset ",
                              out_->data_offset, " but the file is ", out_->size,
                              " bytes"));
  }
  for (RawTensor& t : raw) TS_RETURN_IF_ERROR(PlaceTensor(&t));

  // Tensors may be stored in any order, but never share bytes.
  std::vector<size_t> order(raw.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return raw[x].begin < raw[y].begin; });
  const RawTensor* prev = nullptr;
  for (size_t i : order) {
    const RawTensor& t = raw[i];
    if (t.nbytes == 0) continue;
    if (prev != nullptr && t.begin < prev->end) {
      return Error(absl::StrCat("tensors '", prev->name, "' (data offsets [", prev->offset, ", ",
                                prev->offset + prev->nbytes, ")) and '", t.name, "' ([", t.offset,
                                ", ", t.offset + t.nbytes, ")) overlap"));
    }
    if (prev == nullptr || t.end > prev->end) prev = &t;
  }

  out_->tensors.reserve(raw.size());
  for (RawTensor& t : raw) {
    TensorView v;
    v.name = std::move(t.name);
    v.dtype = t.dtype;
    v.shape.assign(t.dims.rbegin(), t.dims.rend());
    v.data = out_->data + t.begin;
    v.nbytes = t.nbytes;
    v.file = out_->path;
    out_->tensors.push_back(std::move(v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseGguf(GgufContents* c) { return Parser(c).Parse(); }

}  // namespace tierserve
