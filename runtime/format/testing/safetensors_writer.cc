#include "runtime/format/testing/safetensors_writer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "kernels/common/dtype.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

// Element size for the writer's ordering; unknown names sort as bytes.
int ElementBits(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64" || dtype == "C64") return 64;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 32;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 16;
  return 8;
}

}  // namespace

void SafetensorsWriter::AddMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::AddTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                                  std::string_view bytes) {
  AddRawTensor(std::move(name), std::string(DTypeName(dtype)), std::move(shape), bytes);
}

void SafetensorsWriter::AddRawTensor(std::string name, std::string dtype,
                                     std::vector<int64_t> shape, std::string_view bytes) {
  tensors_.push_back({std::move(name), std::move(dtype), std::move(shape), std::string(bytes)});
}

std::string SafetensorsWriter::Serialize() const {
  std::vector<const Tensor*> order;
  for (const Tensor& t : tensors_) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) {
    const int ea = ElementBits(a->dtype), eb = ElementBits(b->dtype);
    return ea != eb ? ea > eb : a->name < b->name;
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string buffer;
  for (const Tensor* t : order) {
    const uint64_t begin = buffer.size();
    buffer += t->bytes;
    header[t->name] = {{"dtype", t->dtype},
                       {"shape", t->shape},
                       {"data_offsets", {begin, static_cast<uint64_t>(buffer.size())}}};
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  return FrameSafetensors(text, buffer);
}

absl::Status SafetensorsWriter::WriteTo(const std::string& path) const {
  return WriteFile(path, Serialize());
}

std::string FrameSafetensors(std::string_view header_json, std::string_view buffer) {
  const uint64_t n = header_json.size();
  char len[8];
  memcpy(len, &n, 8);  // little-endian hosts only, as the project
  std::string out(len, 8);
  out.append(header_json);
  out.append(buffer);
  return out;
}

absl::Status WriteSafetensorsIndex(const std::string& dir,
                                   const std::map<std::string, std::string>& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  return WriteFile(dir + "/model.safetensors.index.json", index.dump(2));
}

}  // namespace tierserve
