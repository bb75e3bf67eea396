#include "runtime/placement/device_map.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/config_error.h"

namespace tierserve {

namespace {

constexpr int kMaxCudaIndex = 255;
// Far more layers than any model has; a bigger range is a typo.
constexpr int64_t kMaxRangeSize = 4096;
// Module paths of a whole map once its ranges are expanded: a model has at
// most 4096 layers (ModelConfig::Validate), so 16 ranges over all of them.
// Without it a few KiB of range keys expand to millions of entries (found with
// tests/fuzz/yaml_config_fuzz: 300 keys took 13 s and 590 MB).
constexpr int64_t kMaxEntries = 16 * kMaxRangeSize;

constexpr char kKeyForms[] =
    "expected a module path of dot-separated names made of letters, digits and _ "
    "(model.layers.3), where one part may be a layer range lo-hi (model.layers.0-14), "
    "or \"\" for everything";

// A non-negative decimal number without leading zeros, at most 9 digits.
std::optional<int64_t> ParseIndex(absl::string_view s) {
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return std::nullopt;
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) return std::nullopt;
  return v;
}

bool IsNamePart(absl::string_view part) {
  return !part.empty() && std::all_of(part.begin(), part.end(),
                                      [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

// Levenshtein distance: single-character insertions, deletions, substitutions.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string Location::ToString() const {
  switch (tier) {
    case Tier::kCuda:
      return absl::StrCat("cuda:", index);
    case Tier::kSim:
      return absl::StrCat("sim:", index);
    case Tier::kCpu:
      return "cpu";
    case Tier::kDisk:
      return "disk";
  }
  return "?";
}

std::optional<Location> ParseLocation(absl::string_view text) {
  if (text == "cpu") return Location{Location::Tier::kCpu, 0};
  if (text == "disk") return Location{Location::Tier::kDisk, 0};
  if (absl::ConsumePrefix(&text, "sim:")) {
    std::optional<int64_t> index = ParseIndex(text);
    if (!index.has_value() || *index > kMaxCudaIndex) return std::nullopt;
    return Location{Location::Tier::kSim, static_cast<int>(*index)};
  }
  absl::ConsumePrefix(&text, "cuda:");  // "cuda:N" or the bare index N
  std::optional<int64_t> index = ParseIndex(text);
  if (!index.has_value() || *index > kMaxCudaIndex) return std::nullopt;
  return Location{Location::Tier::kCuda, static_cast<int>(*index)};
}

std::string Placement::ToString() const {
  if (!precision.has_value()) return device.ToString();
  return absl::StrCat(device.ToString(), " (", PrecisionName(*precision), ")");
}

DeviceMap DeviceMap::WithTier(Location::Tier from, Location::Tier to) const {
  DeviceMap m = *this;
  for (Entry& e : m.entries_) {
    if (e.placement.device.tier == from) e.placement.device.tier = to;
  }
  return m;
}

DeviceMap DeviceMap::Everything(Placement placement, std::string source, std::string key_path) {
  DeviceMap m;
  m.source_ = std::move(source);
  m.key_path_ = std::move(key_path);
  m.entries_.push_back(Entry{"", placement, ""});
  m.by_prefix_[""] = 0;
  return m;
}

std::optional<PlanStrategy> ParsePlanStrategy(absl::string_view text) {
  if (text == "auto") return PlanStrategy::kAuto;
  if (text == "balanced") return PlanStrategy::kBalanced;
  if (text == "sequential") return PlanStrategy::kSequential;
  return std::nullopt;
}

const char* PlanStrategyName(PlanStrategy strategy) {
  switch (strategy) {
    case PlanStrategy::kAuto:
      return "auto";
    case PlanStrategy::kBalanced:
      return "balanced";
    case PlanStrategy::kSequential:
      return "sequential";
  }
  return "?";
}

DeviceMap DeviceMap::Auto(std::string source, std::string key_path, PlanStrategy strategy) {
  DeviceMap m;
  m.auto_ = true;
  m.strategy_ = strategy;
  m.source_ = std::move(source);
  m.key_path_ = std::move(key_path);
  return m;
}

absl::Status DeviceMap::AddKey(const std::string& key, const Placement& placement) {
  std::vector<std::string> prefixes;
  if (key.empty()) {
    prefixes.push_back("");
  } else {
    std::vector<std::string> parts = absl::StrSplit(key, '.');
    int range_part = -1;
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (IsNamePart(parts[i])) continue;
      std::vector<absl::string_view> ends = absl::StrSplit(parts[i], absl::MaxSplits('-', 1));
      std::optional<int64_t> a, b;
      if (ends.size() == 2) {
        a = ParseIndex(ends[0]);
        b = ParseIndex(ends[1]);
      }
      if (!a.has_value() || !b.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("not a module path; ", kKeyForms));
      }
      if (range_part >= 0) {
        return absl::InvalidArgumentError(absl::StrCat("has two ranges (", parts[range_part],
                                                       " and ", parts[i],
                                                       "); expected at most one range per key"));
      }
      if (*a > *b) {
        return absl::InvalidArgumentError(
            absl::StrCat("the range ", parts[i], " runs backwards; expected lo-hi with lo <= hi"));
      }
      if (*b - *a + 1 > kMaxRangeSize) {
        return absl::InvalidArgumentError(absl::StrCat("the range ", parts[i], " spans ",
                                                       *b - *a + 1, " layers; expected at most ",
                                                       kMaxRangeSize));
      }
      range_part = static_cast<int>(i);
      lo = *a;
      hi = *b;
    }
    const int64_t adding = range_part < 0 ? 1 : hi - lo + 1;
    if (static_cast<int64_t>(entries_.size()) + adding > kMaxEntries) {
      return absl::InvalidArgumentError(absl::StrCat(
          "makes the map place more than ", kMaxEntries,
          " module paths once ranges are expanded; expected fewer, wider keys"));
    }
    if (range_part < 0) {
      prefixes.push_back(key);
    } else {
      for (int64_t n = lo; n <= hi; ++n) {
        parts[range_part] = absl::StrCat(n);
        prefixes.push_back(absl::StrJoin(parts, "."));
      }
    }
  }
  for (std::string& prefix : prefixes) {
    if (auto it = by_prefix_.find(prefix); it != by_prefix_.end()) {
      const std::string shown = prefix.empty() ? "\"\" (everything)" : prefix;
      return absl::InvalidArgumentError(absl::StrCat(shown, " is already placed by the key \"",
                                                     entries_[it->second].key,
                                                     "\"; each module path may be placed once"));
    }
    by_prefix_[prefix] = entries_.size();
    entries_.push_back(Entry{std::move(prefix), placement, key});
  }
  return absl::OkStatus();
}

const DeviceMap::Entry* DeviceMap::Match(std::string_view name) const {
  absl::string_view candidate(name.data(), name.size());
  while (!candidate.empty()) {
    if (auto it = by_prefix_.find(candidate); it != by_prefix_.end()) return &entries_[it->second];
    const size_t dot = candidate.rfind('.');
    candidate = dot == absl::string_view::npos ? absl::string_view() : candidate.substr(0, dot);
  }
  if (auto it = by_prefix_.find(""); it != by_prefix_.end()) return &entries_[it->second];
  return nullptr;
}

absl::StatusOr<Placement> DeviceMap::Resolve(std::string_view tensor_name) const {
  if (auto_) {
    return absl::FailedPreconditionError(absl::StrCat(
        source_, ": ", key_path_, " is auto: placements come from the planner, not the map"));
  }
  if (const Entry* e = Match(tensor_name)) return e->placement;
  return absl::NotFoundError(
      absl::StrCat(source_, ": ", key_path_, ": no key places ",
                   absl::string_view(tensor_name.data(), tensor_name.size())));
}

absl::Status DeviceMap::CheckCovers(const std::vector<std::string>& tensor_names,
                                    const std::string& source) const {
  if (auto_) return absl::OkStatus();
  const std::string* first = nullptr;
  size_t uncovered = 0;
  for (const std::string& name : tensor_names) {
    if (Match(name) != nullptr) continue;
    if (first == nullptr) first = &name;
    ++uncovered;
  }
  if (first == nullptr) return absl::OkStatus();
  const size_t dot = first->rfind('.');
  const std::string module = dot == std::string::npos ? *first : first->substr(0, dot);
  return ConfigError(
      source, key_path_,
      absl::StrCat("tensor ", *first, " has no placement",
                   uncovered == 2  ? " (nor has 1 more tensor)"
                   : uncovered > 2 ? absl::StrCat(" (nor have ", uncovered - 1, " more tensors)")
                                   : "",
                   "; every tensor needs a key that is a prefix of its name, such as \"", module,
                   "\", or \"\" for everything not placed otherwise"));
}

absl::Status DeviceMap::CheckEveryKeyUsed(const std::vector<std::string>& tensor_names,
                                          const std::string& source) const {
  if (auto_ || tensor_names.empty()) return absl::OkStatus();
  absl::flat_hash_set<absl::string_view> prefixes;  // every boundary prefix of every name
  for (const std::string& name : tensor_names) {
    absl::string_view n = name;
    prefixes.insert(n);
    for (size_t dot = n.find('.'); dot != absl::string_view::npos; dot = n.find('.', dot + 1)) {
      prefixes.insert(n.substr(0, dot));
    }
  }
  for (const Entry& e : entries_) {
    if (e.prefix.empty() || prefixes.contains(e.prefix)) continue;
    // The module paths nearest to the key, as a hint.
    std::vector<std::pair<size_t, absl::string_view>> near;
    for (absl::string_view p : prefixes) {
      if (!p.empty() && p.back() != '.') near.emplace_back(EditDistance(e.prefix, p), p);
    }
    std::sort(near.begin(), near.end());
    std::string hint;
    for (size_t i = 0; i < near.size() && i < 3; ++i) {
      absl::StrAppend(&hint, i == 0 ? "" : ", ", near[i].second);
    }
    return ConfigError(source, ChildKeyPath(key_path_, e.key),
                       absl::StrCat(e.prefix,
                                    " matches no module of the model; keys must be module paths "
                                    "of the model; the nearest are ",
                                    hint));
  }
  return absl::OkStatus();
}

}  // namespace tierserve
