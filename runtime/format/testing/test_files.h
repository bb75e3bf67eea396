// File helpers for tests that write model files: a temporary folder removed
// on destruction, and whole-file writes.
#ifndef TIERSERVE_RUNTIME_FORMAT_TESTING_TEST_FILES_H_
#define TIERSERVE_RUNTIME_FORMAT_TESTING_TEST_FILES_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tierserve {

// A fresh folder under $TEST_TMPDIR (or /tmp), deleted with its contents when
// the object goes out of scope. path() is empty if creation failed.
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(std::string_view name) const;

 private:
  std::string path_;
};

// Creates or replaces `path` with exactly `bytes`.
absl::Status WriteFile(const std::string& path, std::string_view bytes);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_TESTING_TEST_FILES_H_
