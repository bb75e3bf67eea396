// Shared by the GGUF tests: a fixture that writes files into a temporary
// folder and opens them, and a small valid file to start from.
#ifndef TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_TEST_FIXTURE_H_
#define TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_TEST_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/common/dtype.h"
#include "runtime/format/gguf.h"
#include "runtime/format/testing/gguf_writer.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace gguf_testing {

// Deterministic filler bytes, different per seed.
inline std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed * 17 + 5) & 0xFF);
  return s;
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  // Each write goes to a new file: rewriting one file in place makes ext4
  // flush it on close (its replace-by-truncate heuristic), which slows the
  // loops over thousands of variants by two orders of magnitude.
  std::string NextPath() { return dir_.File("model" + std::to_string(files_++) + ".gguf"); }

  // Writes `w` and opens the result.
  absl::StatusOr<std::unique_ptr<GgufFile>> WriteAndOpen(const GgufWriter& w) {
    path_ = NextPath();
    absl::Status s = w.WriteTo(path_);
    if (!s.ok()) return s;
    return GgufFile::Open(path_);
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> WriteAndOpen(const std::string& bytes) {
    path_ = NextPath();
    absl::Status s = WriteFile(path_, bytes);
    if (!s.ok()) return s;
    return GgufFile::Open(path_);
  }
  // Opens `bytes` expecting failure; returns the message, which must name the file.
  std::string OpenError(const std::string& bytes) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(bytes);
    EXPECT_FALSE(f.ok()) << "expected an error";
    if (f.ok()) return "";
    EXPECT_THAT(f.status().message(), ::testing::HasSubstr(path_));
    return std::string(f.status().message());
  }
  std::string OpenError(const GgufWriter& w) {
    absl::StatusOr<GgufImage> img = w.Build();
    EXPECT_TRUE(img.ok()) << img.status();
    return img.ok() ? OpenError(img->bytes) : "";
  }

  // A header: magic, version, counts. Entries follow.
  static std::string Header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    std::string s = "GGUF";
    AppendU32(&s, version);
    AppendU64(&s, tensors);
    AppendU64(&s, kvs);
    return s;
  }

  ScopedTempDir dir_;
  std::string path_;  // the file written last
  int files_ = 0;
};

// A small valid file with metadata and three tensors, the last one ending
// off the alignment so the file has trailing padding.
inline GgufWriter SmallWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 2);
  w.AddF32Array("scores", {0.5f, -1.0f});
  w.AddStringArray("tokens", {"a", "bc"});
  w.AddTensor("tok.weight", DType::kQ8_0, {2, 32}, Bytes(68, 1));
  w.AddTensor("norm.weight", DType::kF32, {3}, Bytes(12, 2));
  w.AddTensor("w.weight", DType::kF16, {5}, Bytes(10, 3));
  return w;
}

}  // namespace gguf_testing
}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_TESTING_GGUF_TEST_FIXTURE_H_
