#include "runtime/base/config_error.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tierserve {
namespace {

bool IsIdentifier(absl::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-'; });
}

}  // namespace

std::string QuoteForMessage(absl::string_view text) {
  constexpr size_t kMaxShown = 60;
  const bool cut = text.size() > kMaxShown;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxShown)), cut ? "...\"" : "\"");
}

absl::Status ConfigError(absl::string_view source, absl::string_view key_path,
                         absl::string_view what) {
  std::string message;
  if (!source.empty()) absl::StrAppend(&message, source, ": ");
  if (!key_path.empty()) absl::StrAppend(&message, key_path, ": ");
  absl::StrAppend(&message, what);
  return absl::InvalidArgumentError(message);
}

std::string ChildKeyPath(absl::string_view parent, absl::string_view key) {
  if (!IsIdentifier(key)) return absl::StrCat(parent, "[", QuoteForMessage(key), "]");
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

}  // namespace tierserve
