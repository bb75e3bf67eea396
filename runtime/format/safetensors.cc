// safetensors layout: [u64 N, little-endian][N bytes of JSON header][buffer].
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin,
// end)} with offsets relative to the buffer, plus an optional "__metadata__"
// object of strings. Validation follows the reference reader (safetensors'
// read_metadata and Metadata::validate): the tensors, sorted by offsets, must
// tile the buffer exactly, each spanning dtype size x elements.
#include "runtime/format/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "kernels/common/dtype.h"
#include "runtime/base/mapped_file.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the header length is loaded with memcpy");

using Json = nlohmann::json;

// abseil here is built with its own string_view type; StrCat takes that one.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The reference reader's limit on the header size.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr uint64_t kMaxIndexBytes = 100'000'000;
// nlohmann parses any nesting iteratively, but dump() (in messages) recurses:
// deeper headers are refused while parsing (found with
// tests/fuzz/safetensors_reader_fuzz). A header nests 3 deep.
constexpr int kMaxJsonDepth = 64;
constexpr std::string_view kSingleFileName = "model.safetensors";
constexpr std::string_view kIndexFileName = "model.safetensors.index.json";

struct DTypeInfo {
  std::string_view name;
  uint64_t bits;
  std::optional<DType> dtype;  // nullopt: known to the format, not supported here
};

constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 8, DType::kBool},    {"U8", 8, DType::kU8},        {"I8", 8, DType::kI8},
    {"I16", 16, DType::kI16},     {"F16", 16, DType::kF16},     {"BF16", 16, DType::kBF16},
    {"I32", 32, DType::kI32},     {"F32", 32, DType::kF32},     {"F64", 64, DType::kF64},
    {"I64", 64, DType::kI64},     {"F4", 4, std::nullopt},      {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt}, {"F8_E5M2", 8, std::nullopt}, {"F8_E4M3", 8, std::nullopt},
    {"F8_E8M0", 8, std::nullopt}, {"U16", 16, std::nullopt},    {"U32", 32, std::nullopt},
    {"U64", 64, std::nullopt},    {"C64", 64, std::nullopt},
};

const DTypeInfo* FindDType(std::string_view name) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string JsonTypeName(const Json& j) {
  if (j.is_number_unsigned()) return "a non-negative integer";
  if (j.is_number_integer()) return "a negative integer";
  if (j.is_number_float()) return "a non-integer number";
  const std::string name = j.type_name();
  return absl::StrCat(name[0] == 'a' || name[0] == 'o' ? "an " : "a ", name);
}

// Thrown by the parse callback below to stop at kMaxJsonDepth.
struct JsonTooDeep {};

// Parses `text` as JSON. Duplicate keys in any object are an error (JSON
// parsers commonly keep the last one silently; the format forbids them), and
// so is nesting deeper than kMaxJsonDepth.
absl::StatusOr<Json> ParseJson(std::string_view text, const std::string& path,
                               absl::string_view what) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start ||
         event == Json::parse_event_t::array_start) && depth >= kMaxJsonDepth) {
      throw JsonTooDeep();
    }
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && !open_objects.empty()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  try {
    Json j = Json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", what, " has the key '", duplicate, "' twice"));
    }
    return j;
  } catch (const JsonTooDeep&) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", what, " nests arrays and objects deeper than ", kMaxJsonDepth, " levels"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", what, " is not valid JSON: ", e.what()));
  }
}

bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}

// One tensor entry of a header, as declared.
struct Entry {
  std::string name;
  const DTypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// One mapped .safetensors file and its validated tensors.
struct ParsedFile {
  std::unique_ptr<MappedFile> file;
  std::vector<TensorView> tensors;
};

// Reads a non-negative JSON integer into `out`.
bool GetU64(const Json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) return false;
  *out = j.get<uint64_t>();
  return true;
}

absl::StatusOr<Entry> ParseEntry(const std::string& name, const Json& j, const std::string& path) {
  auto error = [&](absl::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': ", msg));
  };
  if (!j.is_object()) {
    return error(absl::StrCat("entry is ", JsonTypeName(j),
                              "; expected an object with dtype, shape and data_offsets"));
  }
  Entry e;
  e.name = name;
  auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string()) return error("\"dtype\" is missing or not a string");
  const std::string dtype_name = dt->get<std::string>();
  e.dtype = FindDType(dtype_name);
  if (e.dtype == nullptr) {
    return error(absl::StrCat("unknown dtype '", dtype_name, "'"));
  }
  auto sh = j.find("shape");
  if (sh == j.end() || !sh->is_array()) return error("\"shape\" is missing or not an array");
  for (const Json& d : *sh) {
    uint64_t v;
    if (!GetU64(d, &v) || v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return error(absl::StrCat("shape element ", d.dump(),
                                " is not allowed; shape elements are non-negative integers"));
    }
    e.shape.push_back(static_cast<int64_t>(v));
  }
  auto off = j.find("data_offsets");
  if (off == j.end() || !off->is_array() || off->size() != 2 || !GetU64((*off)[0], &e.begin) ||
      !GetU64((*off)[1], &e.end)) {
    return error("\"data_offsets\" must be an array of two non-negative integers [begin, end]");
  }
  return e;
}

// The validated tensors of the safetensors image `f`; the views point into
// it. `path` names it in messages.
absl::StatusOr<std::vector<TensorView>> ParseImage(absl::Span<const uint8_t> f,
                                                   const std::string& path) {
  std::vector<TensorView> tensors;
  auto error = [&](absl::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", msg));
  };
  if (f.size() < 8) {
    return error(
        absl::StrCat("file is ", f.size(),
                     " bytes, too short for the 8-byte header length of a safetensors file"));
  }
  uint64_t n;
  memcpy(&n, f.data(), 8);
  if (n > kMaxHeaderBytes) {
    return error(
        absl::StrCat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (n > f.size() - 8) {
    return error(absl::StrCat("header length ", n, " runs past the end of the file (", f.size() - 8,
                              " bytes follow the length field)"));
  }
  const std::string_view text(reinterpret_cast<const char*>(f.data() + 8), n);
  TS_ASSIGN_OR_RETURN(Json header, ParseJson(text, path, "the header"));
  if (!header.is_object()) {
    return error(absl::StrCat("the header is ", JsonTypeName(header), "; expected a JSON object"));
  }

  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        return error(absl::StrCat("__metadata__ is ", JsonTypeName(value),
                                  "; expected an object of strings"));
      }
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          return error(absl::StrCat("__metadata__ value for '", mk, "' is ", JsonTypeName(mv),
                                    "; only strings are allowed"));
        }
      }
      continue;
    }
    TS_ASSIGN_OR_RETURN(Entry e, ParseEntry(key, value, path));
    entries.push_back(std::move(e));
  }

  // As the reference reader: sorted by offsets, each tensor must begin where
  // the previous one ended, so there are no gaps or overlaps.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t prev_end = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    const std::string what =
        absl::StrCat("tensor '", e.name, "' with data_offsets [", e.begin, ", ", e.end, "]");
    if (e.begin != prev_end) {
      const std::string after =
          prev == nullptr ? "the start of the buffer (0)"
                          : absl::StrCat("the end of tensor '", prev->name, "' (", prev_end, ")");
      return error(absl::StrCat(what, (e.begin > prev_end ? " leaves a gap after " : " overlaps "),
                                after, "; tensors must be packed back to back"));
    }
    if (e.end < e.begin) return error(absl::StrCat(what, " ends before it begins"));
    uint64_t elems = 1;
    uint64_t bits = 0;
    bool ok = true;
    for (int64_t d : e.shape) ok = ok && CheckedMul(elems, static_cast<uint64_t>(d), &elems);
    ok = ok && elems <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
         CheckedMul(elems, e.dtype->bits, &bits);
    if (!ok) {
      return error(absl::StrCat("tensor '", e.name, "' shape [", absl::StrJoin(e.shape, ", "),
                                "] overflows 64 bits"));
    }
    if (bits % 8 != 0) {
      return error(absl::StrCat("tensor '", e.name, "' (", Sv(e.dtype->name), ", ", elems,
                                " elements) does not fill a whole number of bytes"));
    }
    if (e.end - e.begin != bits / 8) {
      return error(absl::StrCat(what, " spans ", e.end - e.begin, " bytes, but ", Sv(e.dtype->name),
                                " with shape [", absl::StrJoin(e.shape, ", "), "] takes ", bits / 8,
                                " bytes"));
    }
    prev_end = e.end;
    prev = &e;
  }
  const uint64_t buffer = f.size() - 8 - n;
  if (prev_end != buffer) {
    return error(absl::StrCat(
        "the tensors cover ", prev_end, " bytes of the data buffer, but the ", "buffer holds ",
        buffer, " bytes (",
        buffer > prev_end ? "trailing bytes after the last tensor" : "the file is truncated", ")"));
  }

  for (const Entry& e : entries) {
    if (!e.dtype->dtype.has_value()) {
      return absl::UnimplementedError(absl::StrCat(
          path, ": tensor '", e.name, "' has dtype ", Sv(e.dtype->name),
          ", which is not supported; supported: F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL"));
    }
    TensorView v;
    v.name = e.name;
    v.dtype = *e.dtype->dtype;
    v.shape = e.shape;
    v.data = f.data() + 8 + n + e.begin;
    v.nbytes = e.end - e.begin;
    v.file = path;
    tensors.push_back(std::move(v));
  }
  return tensors;
}

absl::StatusOr<ParsedFile> ParseFile(const std::string& path) {
  ParsedFile out;
  TS_ASSIGN_OR_RETURN(out.file, MappedFile::Open(path));
  TS_ASSIGN_OR_RETURN(out.tensors,
                      ParseImage(absl::MakeConstSpan(out.file->data(), out.file->size()), path));
  return out;
}

// Tensors from one file or a set of shards. Owns the mappings.
class SafetensorsStore : public WeightStore {
 public:
  explicit SafetensorsStore(std::string source) : source_(std::move(source)) {}

  const TensorView* Find(std::string_view name) const override {
    auto it = tensors_.find(Sv(name));
    return it == tensors_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    names.reserve(tensors_.size());
    for (const auto& [name, t] : tensors_) names.push_back(name);
    std::sort(names.begin(), names.end());
    return names;
  }
  const std::string& Source() const override { return source_; }

  void AddFile(std::unique_ptr<MappedFile> f) { files_.push_back(std::move(f)); }
  void AddTensor(TensorView t) {
    std::string name = t.name;
    tensors_.emplace(std::move(name), std::move(t));
  }

 private:
  std::string source_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  absl::flat_hash_map<std::string, TensorView> tensors_;
};

absl::StatusOr<std::unique_ptr<WeightStore>> OpenSingle(const std::string& source,
                                                        const std::string& file) {
  TS_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(file));
  auto store = std::make_unique<SafetensorsStore>(source);
  for (TensorView& t : parsed.tensors) store->AddTensor(std::move(t));
  store->AddFile(std::move(parsed.file));
  return store;
}

// A shard must name a file directly inside the folder.
bool IsPlainFileName(std::string_view s) {
  return !s.empty() && s != "." && s != ".." &&
         s.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

absl::StatusOr<std::unique_ptr<WeightStore>> OpenSharded(const std::string& dir,
                                                         const std::string& index_path) {
  auto error = [&](absl::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": ", msg));
  };
  TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> index_file, MappedFile::Open(index_path));
  if (index_file->size() > kMaxIndexBytes) {
    return error(absl::StrCat("index of ", index_file->size(), " bytes exceeds the limit of ",
                              kMaxIndexBytes));
  }
  const std::string_view text(reinterpret_cast<const char*>(index_file->data()),
                              index_file->size());
  TS_ASSIGN_OR_RETURN(Json index, ParseJson(text, index_path, "the index"));
  if (!index.is_object()) return error("the index is not a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    return error("\"weight_map\" is missing or not an object of tensor name -> shard file");
  }

  // Tensor -> shard, and each shard's tensors, from the index.
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      return error(absl::StrCat("weight_map entry for tensor '", tensor, "' is ",
                                JsonTypeName(shard), "; expected a shard file name"));
    }
    std::string name = shard.get<std::string>();
    if (!IsPlainFileName(name)) {
      return error(absl::StrCat("shard '", name, "' for tensor '", tensor,
                                "' is not a plain file name inside the folder (no '/', '\\', "
                                "'.' or '..')"));
    }
    by_shard[name].push_back(tensor);
  }

  auto store = std::make_unique<SafetensorsStore>(dir);
  for (auto& [shard, tensors] : by_shard) {
    absl::StatusOr<ParsedFile> parsed = ParseFile(absl::StrCat(dir, "/", shard));
    if (!parsed.ok()) {
      return absl::Status(parsed.status().code(),
                          absl::StrCat(index_path, ": shard '", shard, "' (holding tensor '",
                                       tensors.front(), "'): ", parsed.status().message()));
    }
    absl::flat_hash_map<absl::string_view, TensorView*> in_shard;
    for (TensorView& t : parsed->tensors) in_shard.emplace(t.name, &t);
    // Tensors present in a shard but not listed in the index are left out:
    // the index is the checkpoint's table of contents.
    for (const std::string& tensor : tensors) {
      auto it = in_shard.find(tensor);
      if (it == in_shard.end()) {
        return absl::NotFoundError(absl::StrCat(index_path, ": tensor '", tensor,
                                                "' is listed in shard '", shard,
                                                "', but that shard does not contain it"));
      }
      store->AddTensor(*it->second);
    }
    store->AddFile(std::move(parsed->file));
  }
  return store;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightStore>> SafetensorsFromBytes(absl::Span<const uint8_t> bytes,
                                                                  const std::string& source) {
  TS_ASSIGN_OR_RETURN(std::vector<TensorView> tensors, ParseImage(bytes, source));
  auto store = std::make_unique<SafetensorsStore>(source);
  for (TensorView& t : tensors) store->AddTensor(std::move(t));
  return store;
}

absl::StatusOr<std::unique_ptr<WeightStore>> OpenSafetensors(const std::string& path) {
  if (!IsDirectory(path)) return OpenSingle(path, path);
  // As transformers does, a single-file checkpoint wins over an index.
  const std::string single = absl::StrCat(path, "/", Sv(kSingleFileName));
  if (Exists(single)) return OpenSingle(path, single);
  const std::string index = absl::StrCat(path, "/", Sv(kIndexFileName));
  if (Exists(index)) return OpenSharded(path, index);
  return absl::NotFoundError(absl::StrCat(path, ": folder holds neither ", Sv(kSingleFileName),
                                          " nor ", Sv(kIndexFileName)));
}

}  // namespace tierserve
