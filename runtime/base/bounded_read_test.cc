#include "runtime/base/bounded_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

TEST(BoundedReadTest, FileExactlyAtTheLimitReadsWhole) {
  ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  // Past the first 4 KiB buffer, so the read grows it, and ends on the limit.
  std::string bytes(10000, 'x');
  bytes[0] = '\0';
  bytes.back() = 'z';
  const std::string path = dir.File("at_limit");
  ASSERT_TRUE(WriteFile(path, bytes).ok());
  const absl::StatusOr<std::string> read = ReadFileUpTo(path, 10000);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

TEST(BoundedReadTest, EmptyFileAndZeroLimit) {
  ScopedTempDir dir;
  const std::string empty = dir.File("empty");
  ASSERT_TRUE(WriteFile(empty, "").ok());
  const absl::StatusOr<std::string> read = ReadFileUpTo(empty, 0);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");

  const std::string one = dir.File("one");
  ASSERT_TRUE(WriteFile(one, "1").ok());
  EXPECT_TRUE(IsLongerThanLimit(ReadFileUpTo(one, 0).status()));
}

TEST(BoundedReadTest, OneByteOverTheLimitIsRefusedNamingPathAndLimit) {
  ScopedTempDir dir;
  const std::string path = dir.File("over_limit");
  ASSERT_TRUE(WriteFile(path, std::string(10001, 'x')).ok());
  const absl::StatusOr<std::string> read = ReadFileUpTo(path, 10000);
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(IsLongerThanLimit(read.status())) << read.status();
  EXPECT_EQ(read.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(read.status().message(), HasSubstr(path));
  EXPECT_THAT(read.status().message(), HasSubstr("longer than 10000 bytes"));
}

TEST(BoundedReadTest, MissingFileIsNotFoundNamingThePath) {
  ScopedTempDir dir;
  const std::string path = dir.File("does_not_exist");
  const absl::StatusOr<std::string> read = ReadFileUpTo(path, 100);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(IsLongerThanLimit(read.status()));
  EXPECT_THAT(read.status().message(), HasSubstr(path));
  EXPECT_THAT(read.status().message(), HasSubstr("No such file or directory"));
}

TEST(BoundedReadTest, ReadErrorNamesPathWhatAndCause) {
  // read() on a directory fails with EISDIR.
  ScopedTempDir dir;
  const int fd = ::open(dir.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const absl::StatusOr<std::string> read = ReadFdUpTo(fd, dir.path(), 100, "key file");
  ASSERT_FALSE(read.ok());
  EXPECT_FALSE(IsLongerThanLimit(read.status()));
  EXPECT_EQ(read.status().message(),
            dir.path() + ": cannot read the key file: Is a directory");
  // ReadFdUpTo closed the descriptor.
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(BoundedReadTest, ProcfsFileReadsAlthoughItsSizeIsZero) {
  struct stat st;
  ASSERT_EQ(::stat("/proc/self/statm", &st), 0);
  ASSERT_EQ(st.st_size, 0);  // what makes st_size useless as a read size
  const absl::StatusOr<std::string> read = ReadFileUpTo("/proc/self/statm", 512);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->empty());
  EXPECT_EQ(read->back(), '\n');
}

TEST(BoundedReadTest, NegativeLimitIsInvalidAndClosesTheFd) {
  ScopedTempDir dir;
  const std::string path = dir.File("f");
  ASSERT_TRUE(WriteFile(path, "abc").ok());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const absl::StatusOr<std::string> read = ReadFdUpTo(fd, path, -1);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsLongerThanLimit(read.status()));
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST(BoundedReadTest, OnlyTheLimitErrorIsLongerThanLimit) {
  EXPECT_FALSE(IsLongerThanLimit(absl::OkStatus()));
  EXPECT_FALSE(IsLongerThanLimit(absl::OutOfRangeError("x: longer than 3 bytes")));
}

}  // namespace
}  // namespace tierserve
