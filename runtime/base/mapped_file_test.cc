#include "runtime/base/mapped_file.h"

#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

TEST(MappedFileTest, MapsTheWholeFile) {
  ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string bytes = "hello";
  bytes.push_back('\0');
  bytes += std::string(10000, 'x');  // spans more than one page
  bytes += "end";
  const std::string path = dir.File("f.bin");
  ASSERT_TRUE(WriteFile(path, bytes).ok());

  absl::StatusOr<std::unique_ptr<MappedFile>> f = MappedFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->path(), path);
  ASSERT_EQ((*f)->size(), bytes.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), (*f)->size()), bytes);
}

TEST(MappedFileTest, EmptyFileHasNoMapping) {
  ScopedTempDir dir;
  const std::string path = dir.File("empty");
  ASSERT_TRUE(WriteFile(path, "").ok());
  absl::StatusOr<std::unique_ptr<MappedFile>> f = MappedFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->size(), 0u);
  EXPECT_EQ((*f)->data(), nullptr);
}

TEST(MappedFileTest, MissingFileNamesPathAndReason) {
  ScopedTempDir dir;
  const std::string path = dir.File("does_not_exist.gguf");
  absl::StatusOr<std::unique_ptr<MappedFile>> f = MappedFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(f.status().message(), HasSubstr(path));
  EXPECT_THAT(f.status().message(), HasSubstr("No such file or directory"));
}

TEST(MappedFileTest, DirectoryIsRejected) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<MappedFile>> f = MappedFile::Open(dir.path());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(f.status().message(), HasSubstr(dir.path()));
  EXPECT_THAT(f.status().message(), HasSubstr("not a regular file"));
}

TEST(MappedFileTest, MappingOutlivesChangesToTheName) {
  // The mapping holds the file, not the name: removing the name leaves the
  // bytes readable.
  ScopedTempDir dir;
  const std::string path = dir.File("f.bin");
  ASSERT_TRUE(WriteFile(path, "abcdef").ok());
  absl::StatusOr<std::unique_ptr<MappedFile>> f = MappedFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(unlink(path.c_str()), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*f)->data()), 6), "abcdef");
}

}  // namespace
}  // namespace tierserve
