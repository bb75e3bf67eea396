#include "runtime/format/testing/test_files.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tierserve {

ScopedTempDir::ScopedTempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string templ =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/tierserve_test_XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
}

ScopedTempDir::~ScopedTempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ScopedTempDir::File(std::string_view name) const {
  return absl::StrCat(path_, "/", std::string(name));
}

absl::Status WriteFile(const std::string& path, std::string_view bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot create"));
  const size_t written = fwrite(bytes.data(), 1, bytes.size(), f);
  const bool closed = fclose(f) == 0;
  if (written != bytes.size() || !closed) {
    return absl::DataLossError(absl::StrCat(path, ": short write"));
  }
  return absl::OkStatus();
}

}  // namespace tierserve
