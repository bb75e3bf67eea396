#include "runtime/placement/precision.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tierserve {
namespace {

// The one list of precision names.
constexpr std::pair<Precision, const char*> kPrecisions[] = {
    {Precision::kFp32, "fp32"},      {Precision::kFp16, "fp16"},      {Precision::kBf16, "bf16"},
    {Precision::kInt8, "int8"},      {Precision::kNf4, "nf4"},        {Precision::kFp4, "fp4"},
    {Precision::kInt8Wo, "int8_wo"}, {Precision::kInt4Wo, "int4_wo"}, {Precision::kQ8_0, "q8_0"},
    {Precision::kQ4_0, "q4_0"},      {Precision::kQ4_1, "q4_1"},
};

}  // namespace

const char* PrecisionName(Precision p) {
  for (const auto& [value, name] : kPrecisions)
    if (value == p) return name;
  return "?";
}

std::optional<Precision> ParsePrecision(absl::string_view name) {
  for (const auto& [value, n] : kPrecisions)
    if (name == n) return value;
  return std::nullopt;
}

std::string PrecisionNames() {
  std::string out;
  for (const auto& [value, name] : kPrecisions)
    absl::StrAppend(&out, out.empty() ? "" : ", ", name);
  return out;
}

const char* ActivationPrecisionName(ActivationPrecision p) {
  return p == ActivationPrecision::kInt8 ? "int8" : "fp32";
}

std::optional<ActivationPrecision> ParseActivationPrecision(absl::string_view name) {
  if (name == "fp32") return ActivationPrecision::kFp32;
  if (name == "int8") return ActivationPrecision::kInt8;
  return std::nullopt;
}

}  // namespace tierserve
