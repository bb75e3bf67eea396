#include "server/metrics/host_memory.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/base/bounded_read.h"

namespace tierserve {
namespace {

// /proc/meminfo is about fifty short lines (1.5 KiB); a cgroup file is one
// number or "max".
constexpr int64_t kMaxMeminfoBytes = 16 << 10;
constexpr int64_t kMaxCgroupFileBytes = 64;

absl::Status FileError(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

// A non-negative decimal that fills `digits` and fits int64_t; nullopt otherwise.
std::optional<int64_t> ParseCount(absl::string_view digits) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || digits.empty() || end != digits.data() + digits.size() ||
      value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  return static_cast<int64_t>(value);
}

absl::string_view TrimTrailingSpace(absl::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// The bytes of meminfo's line `key` ("MemTotal:   16314464 kB").
absl::StatusOr<int64_t> MeminfoBytes(const std::string& path, absl::string_view text,
                                     absl::string_view key) {
  absl::string_view rest = text;
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    absl::string_view line = rest.substr(0, eol);
    rest = eol == absl::string_view::npos ? absl::string_view() : rest.substr(eol + 1);
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    line = TrimTrailingSpace(line.substr(key.size() + 1));
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    constexpr absl::string_view kUnit = " kB";
    const std::optional<int64_t> kib =
        line.size() > kUnit.size() && line.substr(line.size() - kUnit.size()) == kUnit
            ? ParseCount(line.substr(0, line.size() - kUnit.size()))
            : std::nullopt;
    if (!kib.has_value()) return FileError(path, absl::StrCat(key, " is not a count of kB"));
    if (*kib > std::numeric_limits<int64_t>::max() / 1024) {
      return FileError(path, absl::StrCat(key, " overflows a byte count"));
    }
    return *kib * 1024;
  }
  return FileError(path, absl::StrCat("no ", key, " line"));
}

// The byte count in a cgroup file; nullopt when it does not exist or, for a
// limit (`may_be_max`), reads "max".
absl::StatusOr<std::optional<int64_t>> CgroupBytes(const std::string& path, bool may_be_max) {
  absl::StatusOr<std::string> text = ReadFileUpTo(path, kMaxCgroupFileBytes);
  if (absl::IsNotFound(text.status())) return std::nullopt;
  if (!text.ok()) return text.status();
  const absl::string_view value = TrimTrailingSpace(*text);
  if (may_be_max && value == "max") return std::nullopt;
  const std::optional<int64_t> bytes = ParseCount(value);
  if (!bytes.has_value()) {
    return FileError(path, may_be_max ? "neither \"max\" nor a byte count" : "not a byte count");
  }
  return bytes;
}

}  // namespace

absl::StatusOr<HostMemory> ReadHostMemory(const std::string& meminfo_path,
                                          const std::string& cgroup_dir) {
  const absl::StatusOr<std::string> meminfo = ReadFileUpTo(meminfo_path, kMaxMeminfoBytes);
  if (!meminfo.ok()) return meminfo.status();
  const absl::StatusOr<int64_t> mem_total = MeminfoBytes(meminfo_path, *meminfo, "MemTotal");
  if (!mem_total.ok()) return mem_total.status();
  const absl::StatusOr<int64_t> mem_available =
      MeminfoBytes(meminfo_path, *meminfo, "MemAvailable");
  if (!mem_available.ok()) return mem_available.status();
  HostMemory host{*mem_total, *mem_available};

  const absl::StatusOr<std::optional<int64_t>> limit =
      CgroupBytes(cgroup_dir + "/memory.max", /*may_be_max=*/true);
  if (!limit.ok()) return limit.status();
  if (!limit->has_value()) return host;
  const absl::StatusOr<std::optional<int64_t>> current =
      CgroupBytes(cgroup_dir + "/memory.current", /*may_be_max=*/false);
  if (!current.ok()) return current.status();
  host.total = std::min(host.total, **limit);
  // A cgroup can be over its limit (the limit lowered below its usage, or
  // memory it cannot reclaim): nothing is left then, not a negative amount.
  const int64_t left = current->has_value() ? std::max<int64_t>(0, **limit - **current) : **limit;
  host.available = std::min({host.available, left, host.total});
  return host;
}

}  // namespace tierserve
