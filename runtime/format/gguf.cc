// GgufFile: typed access to the metadata and tensors that gguf_parser.cc
// reads and validates.
#include "runtime/format/gguf.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/mapped_file.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf_parser.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

using VT = GgufValue::Type;

// abseil here is built with its own string_view type; StrCat takes that one.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::StatusOr<const GgufValue*> Lookup(const GgufContents& c, std::string_view key) {
  auto it = c.metadata.find(key);
  if (it == c.metadata.end()) {
    return absl::NotFoundError(absl::StrCat(c.path, ": metadata key '", Sv(key), "' is absent"));
  }
  return &it->second;
}

absl::Status TypeError(const GgufContents& c, std::string_view key, const GgufValue& v,
                       absl::string_view want) {
  std::string found = GgufValueTypeName(static_cast<uint32_t>(v.type));
  if (v.type == VT::kArray) {
    const auto& arr = std::get<GgufArray>(v.value);
    if (!arr.empty()) {
      absl::StrAppend(&found, " of ", GgufValueTypeName(static_cast<uint32_t>(arr[0].type)));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(c.path, ": metadata key '", Sv(key), "' has type ", found, "; expected ", want));
}

}  // namespace

struct GgufFile::Impl : GgufContents {};

GgufFile::GgufFile() : impl_(std::make_unique<Impl>()) {}
GgufFile::~GgufFile() = default;

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  TS_ASSIGN_OR_RETURN(f->impl_->file, MappedFile::Open(path));
  f->impl_->data = f->impl_->file->data();
  f->impl_->size = f->impl_->file->size();
  f->impl_->path = path;
  TS_RETURN_IF_ERROR(ParseGguf(f->impl_.get()));
  return f;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBytes(absl::Span<const uint8_t> bytes,
                                                              const std::string& source) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->impl_->data = bytes.data();
  f->impl_->size = bytes.size();
  f->impl_->path = source;
  TS_RETURN_IF_ERROR(ParseGguf(f->impl_.get()));
  return f;
}

uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
uint64_t GgufFile::data_offset() const { return impl_->data_offset; }
const std::map<std::string, GgufValue, std::less<>>& GgufFile::metadata() const {
  return impl_->metadata;
}
bool GgufFile::Has(std::string_view key) const { return impl_->metadata.contains(key); }

namespace {

// The integer held by `v`, if it is an integer type, widened to T when it fits.
template <typename T>
std::optional<T> IntegerAs(const GgufValue& v, bool* is_integer) {
  *is_integer = true;
  if (const auto* u = std::get_if<uint64_t>(&v.value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
    return static_cast<T>(*u);
  }
  if (const auto* s = std::get_if<int64_t>(&v.value)) {
    if (*s < 0 && std::is_unsigned_v<T>) return std::nullopt;
    return static_cast<T>(*s);
  }
  *is_integer = false;
  return std::nullopt;
}

std::string ValueText(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return absl::StrCat(*u);
  if (const auto* s = std::get_if<int64_t>(&v.value)) return absl::StrCat(*s);
  return "?";
}

}  // namespace

absl::StatusOr<uint64_t> GgufFile::GetUint(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  bool is_integer;
  if (auto r = IntegerAs<uint64_t>(*v, &is_integer)) return *r;
  if (!is_integer) return TypeError(*impl_, key, *v, "an unsigned integer");
  return absl::OutOfRangeError(absl::StrCat(impl_->path, ": metadata key '", Sv(key), "' holds ",
                                            ValueText(*v), ", which is not an unsigned integer"));
}

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  bool is_integer;
  if (auto r = IntegerAs<int64_t>(*v, &is_integer)) return *r;
  if (!is_integer) return TypeError(*impl_, key, *v, "an integer");
  return absl::OutOfRangeError(absl::StrCat(impl_->path, ": metadata key '", Sv(key), "' holds ",
                                            ValueText(*v), ", which does not fit an int64"));
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  if (const auto* d = std::get_if<double>(&v->value)) return *d;
  return TypeError(*impl_, key, *v, "f32 or f64");
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return TypeError(*impl_, key, *v, "bool");
}

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return TypeError(*impl_, key, *v, "string");
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  const auto* arr = std::get_if<GgufArray>(&v->value);
  if (arr == nullptr || (!arr->empty() && arr->front().type != VT::kString)) {
    return TypeError(*impl_, key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(arr->size());
  for (const GgufValue& e : *arr) out.push_back(std::get<std::string>(e.value));
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  const auto* arr = std::get_if<GgufArray>(&v->value);
  if (arr == nullptr || (!arr->empty() && !std::holds_alternative<double>(arr->front().value))) {
    return TypeError(*impl_, key, *v, "array of f32 or f64");
  }
  std::vector<float> out;
  out.reserve(arr->size());
  for (const GgufValue& e : *arr) out.push_back(static_cast<float>(std::get<double>(e.value)));
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  TS_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(*impl_, key));
  const auto* arr = std::get_if<GgufArray>(&v->value);
  bool is_integer = arr != nullptr;
  if (arr != nullptr && !arr->empty()) IntegerAs<int64_t>(arr->front(), &is_integer);
  if (!is_integer) return TypeError(*impl_, key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(arr->size());
  for (size_t i = 0; i < arr->size(); ++i) {
    std::optional<int64_t> x = IntegerAs<int64_t>((*arr)[i], &is_integer);
    if (!x.has_value()) {
      return absl::OutOfRangeError(absl::StrCat(impl_->path, ": metadata key '", Sv(key),
                                                "' element ", i, " holds ", ValueText((*arr)[i]),
                                                ", which does not fit an int64"));
    }
    out.push_back(*x);
  }
  return out;
}

const TensorView* GgufFile::Find(std::string_view name) const {
  auto it = impl_->by_name.find(Sv(name));
  return it == impl_->by_name.end() ? nullptr : &impl_->tensors[it->second];
}

std::vector<std::string> GgufFile::Names() const {
  std::vector<std::string> names;
  names.reserve(impl_->tensors.size());
  for (const TensorView& t : impl_->tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  return names;
}

const std::string& GgufFile::Source() const { return impl_->path; }

}  // namespace tierserve
