#include "runtime/format/testing/gguf_writer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/common/dtype.h"
#include "runtime/format/gguf.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

using VT = GgufValue::Type;

template <typename T>
void AppendLe(std::string* out, T v) {
  char buf[sizeof(T)];
  memcpy(buf, &v, sizeof(T));  // the project builds for little-endian hosts only
  out->append(buf, sizeof(T));
}

void AppendValue(std::string* out, const GgufValue& v) {
  auto u = [&] { return std::get<uint64_t>(v.value); };
  auto s = [&] { return std::get<int64_t>(v.value); };
  switch (v.type) {
    case VT::kU8:
      AppendLe(out, static_cast<uint8_t>(u()));
      return;
    case VT::kI8:
      AppendLe(out, static_cast<int8_t>(s()));
      return;
    case VT::kU16:
      AppendLe(out, static_cast<uint16_t>(u()));
      return;
    case VT::kI16:
      AppendLe(out, static_cast<int16_t>(s()));
      return;
    case VT::kU32:
      AppendLe(out, static_cast<uint32_t>(u()));
      return;
    case VT::kI32:
      AppendLe(out, static_cast<int32_t>(s()));
      return;
    case VT::kU64:
      AppendLe(out, u());
      return;
    case VT::kI64:
      AppendLe(out, s());
      return;
    case VT::kF32:
      AppendLe(out, static_cast<float>(std::get<double>(v.value)));
      return;
    case VT::kF64:
      AppendLe(out, std::get<double>(v.value));
      return;
    case VT::kBool:
      AppendLe(out, static_cast<uint8_t>(std::get<bool>(v.value) ? 1 : 0));
      return;
    case VT::kString:
      AppendGgufString(out, std::get<std::string>(v.value));
      return;
    case VT::kArray: {
      const auto& arr = std::get<GgufArray>(v.value);
      AppendU32(out, static_cast<uint32_t>(arr.empty() ? VT::kU8 : arr[0].type));
      AppendU64(out, arr.size());
      for (const GgufValue& e : arr) AppendValue(out, e);
      return;
    }
  }
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

}  // namespace

void AppendU32(std::string* out, uint32_t v) { AppendLe(out, v); }
void AppendU64(std::string* out, uint64_t v) { AppendLe(out, v); }
void AppendGgufString(std::string* out, std::string_view s) {
  AppendU64(out, s.size());
  out->append(s);
}

std::optional<uint32_t> GgmlTypeIdForTest(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ4_1:
      return 3;
    case DType::kQ5_0:
      return 6;
    case DType::kQ5_1:
      return 7;
    case DType::kQ8_0:
      return 8;
    case DType::kQ4_K:
      return 12;
    case DType::kQ6_K:
      return 14;
    case DType::kI8:
      return 24;
    case DType::kI16:
      return 25;
    case DType::kI32:
      return 26;
    case DType::kI64:
      return 27;
    case DType::kF64:
      return 28;
    case DType::kBF16:
      return 30;
    case DType::kU8:
    case DType::kBool:
      return std::nullopt;
  }
  return std::nullopt;
}

void GgufWriter::AddRawKv(std::string key, uint32_t type, std::string_view value_bytes) {
  AppendGgufString(&kv_bytes_, key);
  AppendU32(&kv_bytes_, type);
  kv_bytes_.append(value_bytes);
  ++kv_count_;
}

void GgufWriter::AddValue(std::string key, const GgufValue& v) {
  std::string bytes;
  AppendValue(&bytes, v);
  AddRawKv(std::move(key), static_cast<uint32_t>(v.type), bytes);
}

void GgufWriter::AddU8(std::string key, uint8_t v) {
  AddValue(std::move(key), {VT::kU8, uint64_t{v}});
}
void GgufWriter::AddI8(std::string key, int8_t v) {
  AddValue(std::move(key), {VT::kI8, int64_t{v}});
}
void GgufWriter::AddU16(std::string key, uint16_t v) {
  AddValue(std::move(key), {VT::kU16, uint64_t{v}});
}
void GgufWriter::AddI16(std::string key, int16_t v) {
  AddValue(std::move(key), {VT::kI16, int64_t{v}});
}
void GgufWriter::AddU32(std::string key, uint32_t v) {
  AddValue(std::move(key), {VT::kU32, uint64_t{v}});
}
void GgufWriter::AddI32(std::string key, int32_t v) {
  AddValue(std::move(key), {VT::kI32, int64_t{v}});
}
void GgufWriter::AddU64(std::string key, uint64_t v) { AddValue(std::move(key), {VT::kU64, v}); }
void GgufWriter::AddI64(std::string key, int64_t v) { AddValue(std::move(key), {VT::kI64, v}); }
void GgufWriter::AddF32(std::string key, float v) {
  AddValue(std::move(key), {VT::kF32, double{v}});
}
void GgufWriter::AddF64(std::string key, double v) { AddValue(std::move(key), {VT::kF64, v}); }
void GgufWriter::AddBool(std::string key, bool v) { AddValue(std::move(key), {VT::kBool, v}); }
void GgufWriter::AddString(std::string key, std::string_view v) {
  AddValue(std::move(key), {VT::kString, std::string(v)});
}

void GgufWriter::AddStringArray(std::string key, const std::vector<std::string>& v) {
  std::string bytes;
  AppendU32(&bytes, static_cast<uint32_t>(VT::kString));
  AppendU64(&bytes, v.size());
  for (const std::string& s : v) AppendGgufString(&bytes, s);
  AddRawKv(std::move(key), static_cast<uint32_t>(VT::kArray), bytes);
}

void GgufWriter::AddF32Array(std::string key, const std::vector<float>& v) {
  std::string bytes;
  AppendU32(&bytes, static_cast<uint32_t>(VT::kF32));
  AppendU64(&bytes, v.size());
  for (float f : v) AppendLe(&bytes, f);
  AddRawKv(std::move(key), static_cast<uint32_t>(VT::kArray), bytes);
}

void GgufWriter::AddI32Array(std::string key, const std::vector<int32_t>& v) {
  std::string bytes;
  AppendU32(&bytes, static_cast<uint32_t>(VT::kI32));
  AppendU64(&bytes, v.size());
  for (int32_t i : v) AppendLe(&bytes, i);
  AddRawKv(std::move(key), static_cast<uint32_t>(VT::kArray), bytes);
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  AddU32("general.alignment", alignment);
  alignment_ = alignment == 0 ? 32 : alignment;
}

void GgufWriter::AddTensor(std::string name, DType dtype, const std::vector<int64_t>& shape,
                           std::string_view bytes) {
  const std::optional<uint32_t> id = GgmlTypeIdForTest(dtype);
  if (!id.has_value()) {
    if (error_.ok()) {
      error_ = absl::InvalidArgumentError(absl::StrCat(
          "GGUF has no type id for ", std::string(DTypeName(dtype)), " (tensor '", name, "')"));
    }
    return;
  }
  std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
  AddRawTensor(std::move(name), *id, std::move(dims), bytes);
}

void GgufWriter::AddRawTensor(std::string name, uint32_t ggml_type, std::vector<uint64_t> ggml_dims,
                              std::string_view bytes, std::optional<uint64_t> offset) {
  tensors_.push_back(
      {std::move(name), ggml_type, std::move(ggml_dims), std::string(bytes), offset});
}

absl::StatusOr<GgufImage> GgufWriter::Build() const {
  if (!error_.ok()) return error_;
  GgufImage img;
  std::string& out = img.bytes;
  out.append("GGUF");
  AppendU32(&out, version_);
  AppendU64(&out, tensors_.size());
  AppendU64(&out, kv_count_);
  out.append(kv_bytes_);

  // Assign offsets first: the infos carry them.
  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  uint64_t data_size = 0;
  for (const Tensor& t : tensors_) {
    const uint64_t off = t.offset.value_or(AlignUp(next, alignment_));
    offsets.push_back(off);
    if (t.bytes.empty()) continue;  // an explicit far-off offset must not grow the file
    next = std::max(next, off + t.bytes.size());
    data_size = std::max(data_size, off + t.bytes.size());
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    AppendGgufString(&out, t.name);
    AppendU32(&out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) AppendU64(&out, d);
    AppendU32(&out, t.ggml_type);
    AppendU64(&out, offsets[i]);
  }
  img.data_offset = AlignUp(out.size(), alignment_);
  out.resize(img.data_offset, '\0');
  std::string data(AlignUp(data_size, alignment_), '\0');
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].bytes.empty()) continue;
    std::copy(tensors_[i].bytes.begin(), tensors_[i].bytes.end(), data.begin() + offsets[i]);
  }
  img.data_end = img.data_offset + data_size;
  out.append(data);
  return img;
}

absl::Status GgufWriter::WriteTo(const std::string& path) const {
  absl::StatusOr<GgufImage> img = Build();
  if (!img.ok()) return img.status();
  return WriteFile(path, img->bytes);
}

}  // namespace tierserve
