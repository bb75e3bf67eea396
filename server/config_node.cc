#include "server/config_node.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tierserve {

namespace {

std::string RangeText(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) return absl::StrCat("an integer >= ", lo);
  return absl::StrCat("an integer from ", lo, " to ", hi);
}

// Digits with an optional leading '-', no leading zeros (YAML 1.1 reads
// "010" as octal; refusing it avoids the ambiguity).
bool IsDecimalInteger(absl::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty() || s.size() > 19) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

}  // namespace

std::optional<int64_t> ParseByteSize(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  size_t i = 0;
  while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
  const absl::string_view whole = text.substr(0, i);
  absl::string_view fraction;
  if (i < text.size() && text[i] == '.') {
    const size_t start = ++i;
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
    fraction = text.substr(start, i - start);
    if (fraction.empty()) return std::nullopt;
  }
  // At most 26 digits keep the arithmetic below inside 128 bits: 10^26 * 2^40 < 2^128.
  if (whole.empty() || whole.size() > 19 || fraction.size() > 7) return std::nullopt;
  const absl::string_view unit = absl::StripLeadingAsciiWhitespace(text.substr(i));
  static constexpr std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"KB", 1000ull},
      {"kB", 1000ull},
      {"MB", 1000ull * 1000},
      {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
  };
  uint64_t multiplier = 0;
  for (const auto& [name, m] : kUnits)
    if (unit == name) multiplier = m;
  if (multiplier == 0) return std::nullopt;
  if (unit.empty() && !fraction.empty()) return std::nullopt;  // a fraction of a byte

  unsigned __int128 mantissa = 0, scale = 1;
  for (char c : whole) mantissa = mantissa * 10 + static_cast<unsigned>(c - '0');
  for (char c : fraction) {
    mantissa = mantissa * 10 + static_cast<unsigned>(c - '0');
    scale *= 10;
  }
  const unsigned __int128 bytes = mantissa * multiplier / scale;
  if (bytes > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
    return std::nullopt;
  return static_cast<int64_t>(bytes);
}

absl::Status ConfigNode::Error(absl::string_view what) const {
  return ConfigError(source_, key_path_, what);
}

std::string ConfigNode::Describe() const {
  switch (node_.Type()) {
    case YAML::NodeType::Scalar:
      return QuoteForMessage(node_.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "no value";
  }
}

bool ConfigNode::IsPlainScalar() const {
  // yaml-cpp tags a plain (unquoted) scalar "?" and a quoted one "!".
  return node_.IsScalar() && node_.Tag() == "?";
}

absl::Status ConfigNode::ForEachEntry(
    absl::string_view what,
    const std::function<absl::Status(const std::string&, const ConfigNode&)>& fn) const {
  if (!node_.IsMap()) return Error(absl::StrCat("got ", Describe(), "; expected ", what));
  absl::flat_hash_set<std::string> seen;
  for (const auto& entry : node_) {
    if (!entry.first.IsScalar()) {
      return Error(absl::StrCat("has a key that is ",
                                ConfigNode(entry.first, source_, key_path_).Describe(),
                                "; keys must be text"));
    }
    const std::string key = entry.first.Scalar();
    ConfigNode value(entry.second, source_, ChildKeyPath(key_path_, key));
    if (!seen.insert(key).second) return value.Error("duplicate key; each key may appear once");
    if (absl::Status s = fn(key, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ConfigNode::CheckMap(const std::vector<std::string>& known,
                                  absl::string_view what) const {
  return ForEachEntry(what, [&](const std::string& key, const ConfigNode& value) {
    if (std::find(known.begin(), known.end(), key) != known.end()) return absl::OkStatus();
    return value.Error(absl::StrCat("unknown key; known keys: ", absl::StrJoin(known, ", ")));
  });
}

std::optional<ConfigNode> ConfigNode::Get(absl::string_view key) const {
  for (const auto& entry : node_) {
    if (entry.first.IsScalar() && entry.first.Scalar() == key) {
      return ConfigNode(entry.second, source_, ChildKeyPath(key_path_, key));
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<ConfigNode>> ConfigNode::Items(absl::string_view what) const {
  if (!node_.IsSequence()) return Error(absl::StrCat("got ", Describe(), "; expected ", what));
  std::vector<ConfigNode> items;
  for (size_t i = 0; i < node_.size(); ++i) {
    items.emplace_back(node_[i], source_, absl::StrCat(key_path_, "[", i, "]"));
  }
  return items;
}

absl::StatusOr<std::string> ConfigNode::String(absl::string_view allowed) const {
  if (!node_.IsScalar() || node_.Scalar().empty()) {
    return Error(absl::StrCat("got ", Describe(), "; expected ", allowed));
  }
  return node_.Scalar();
}

absl::StatusOr<int64_t> ConfigNode::Int(int64_t lo, int64_t hi) const {
  int64_t v = 0;
  if (!IsPlainScalar() || !IsDecimalInteger(node_.Scalar()) ||
      !absl::SimpleAtoi(node_.Scalar(), &v)) {
    return Error(absl::StrCat(Describe(), " is not an integer; expected ", RangeText(lo, hi)));
  }
  if (v < lo || v > hi) {
    return Error(absl::StrCat(v, " is out of range; expected ", RangeText(lo, hi)));
  }
  return v;
}

absl::StatusOr<bool> ConfigNode::Bool() const {
  if (IsPlainScalar()) {
    const std::string& s = node_.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  return Error(absl::StrCat(Describe(), " is not a boolean; expected true or false"));
}

absl::StatusOr<double> ConfigNode::NonNegativeDouble() const {
  double v = 0;
  if (!IsPlainScalar() || !absl::SimpleAtod(node_.Scalar(), &v) || !std::isfinite(v)) {
    return Error(absl::StrCat(Describe(), " is not a number; expected a number >= 0"));
  }
  if (v < 0) return Error(absl::StrCat(node_.Scalar(), " is out of range; expected a number >= 0"));
  return v;
}

absl::StatusOr<int64_t> ConfigNode::ByteSize(int64_t lo, int64_t hi) const {
  std::optional<int64_t> v;
  if (node_.IsScalar()) v = ParseByteSize(node_.Scalar());
  if (!v.has_value())
    return Error(absl::StrCat(Describe(), " is not a size; expected ", kByteSizeForms));
  if (*v < lo || *v > hi) {
    return Error(absl::StrCat(Describe(), " is ", *v, " bytes, out of range; expected ", lo, " to ",
                              hi, " bytes"));
  }
  return *v;
}

absl::StatusOr<std::string> ConfigNode::OneOf(const std::vector<std::string>& choices) const {
  if (node_.IsScalar() &&
      std::find(choices.begin(), choices.end(), node_.Scalar()) != choices.end()) {
    return node_.Scalar();
  }
  return Error(absl::StrCat(Describe(), " is not one of ", absl::StrJoin(choices, ", ")));
}

}  // namespace tierserve
