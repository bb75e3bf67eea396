#include "server/metrics/host_memory.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kKiB = 1024;

// A fresh directory per test, standing in for /sys/fs/cgroup.
std::string MakeDir(const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name;
  ::mkdir(path.c_str(), 0755);
  std::remove((path + "/memory.max").c_str());
  std::remove((path + "/memory.current").c_str());
  return path;
}

std::string WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

// The opening of a real /proc/meminfo, with the totals given in kB.
std::string Meminfo(int64_t total_kib, int64_t available_kib) {
  return "MemTotal:       " + std::to_string(total_kib) +
         " kB\n"
         "MemFree:         1000000 kB\n"
         "MemAvailable:   " +
         std::to_string(available_kib) +
         " kB\n"
         "Buffers:          123456 kB\n"
         "HugePages_Total:       0\n";
}

TEST(ReadHostMemory, MeminfoAloneWithoutACgroup) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_plain", Meminfo(16000000, 12000000));
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, MakeDir("cgroup_none"));
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, 16000000 * kKiB);
  EXPECT_EQ(host->available, 12000000 * kKiB);
}

TEST(ReadHostMemory, ACgroupWithoutALimit) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_max", Meminfo(16000000, 12000000));
  const std::string cgroup = MakeDir("cgroup_max");
  WriteFile(cgroup + "/memory.max", "max\n");
  WriteFile(cgroup + "/memory.current", "5000000000\n");
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, 16000000 * kKiB);
  EXPECT_EQ(host->available, 12000000 * kKiB);
}

TEST(ReadHostMemory, ACgroupLimitBelowTheMachine) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_limit", Meminfo(16000000, 12000000));
  const std::string cgroup = MakeDir("cgroup_limit");
  WriteFile(cgroup + "/memory.max", "2147483648\n");     // 2 GiB
  WriteFile(cgroup + "/memory.current", "536870912\n");  // 512 MiB
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, int64_t{2147483648});
  EXPECT_EQ(host->available, int64_t{2147483648} - 536870912);
}

TEST(ReadHostMemory, TheMachineLowerThanALooseLimit) {
  // A limit above the RAM leaves the total, and the machine has less free
  // than the cgroup has left.
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_loose", Meminfo(4000000, 1000000));
  const std::string cgroup = MakeDir("cgroup_loose");
  WriteFile(cgroup + "/memory.max", "68719476736\n");  // 64 GiB
  WriteFile(cgroup + "/memory.current", "1073741824\n");
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, 4000000 * kKiB);
  EXPECT_EQ(host->available, 1000000 * kKiB);
}

TEST(ReadHostMemory, ACgroupOverItsLimitHasNothingAvailable) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_over", Meminfo(16000000, 12000000));
  const std::string cgroup = MakeDir("cgroup_over");
  WriteFile(cgroup + "/memory.max", "1073741824\n");
  WriteFile(cgroup + "/memory.current", "1073745920\n");
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, int64_t{1073741824});
  EXPECT_EQ(host->available, 0);
}

TEST(ReadHostMemory, ALimitWithoutAUsageFileBoundsBoth) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_nocur", Meminfo(16000000, 12000000));
  const std::string cgroup = MakeDir("cgroup_nocur");
  WriteFile(cgroup + "/memory.max", "1073741824\n");
  const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->total, int64_t{1073741824});
  EXPECT_EQ(host->available, int64_t{1073741824});
}

TEST(ReadHostMemory, MalformedMeminfoIsAnErrorNamingTheFile) {
  for (const std::string& contents :
       {std::string(""),
        std::string("MemTotal:       16000000 kB\nMemFree:  1 kB\n"),  // no MemAvailable
        std::string("MemAvailable:   12000000 kB\n"),                  // no MemTotal
        std::string("MemTotal:       16x00000 kB\nMemAvailable:   12000000 kB\n"),
        std::string("MemTotal:       -16000000 kB\nMemAvailable:   12000000 kB\n"),
        std::string("MemTotal:       16000000\nMemAvailable:   12000000 kB\n"),  // no unit
        std::string("MemTotal:       16000000 MB\nMemAvailable:   12000000 kB\n"),
        std::string("MemTotal:        kB\nMemAvailable:   12000000 kB\n"),
        std::string("MemTotal:       16000000 kB\nMemAvailable:   99999999999999999999 kB\n"),
        // Fits int64_t as kB, not as bytes.
        std::string("MemTotal:       9007199254740993 kB\nMemAvailable:   12000000 kB\n")}) {
    const std::string meminfo = WriteFile(::testing::TempDir() + "/meminfo_bad", contents);
    const absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, MakeDir("cgroup_for_bad"));
    ASSERT_FALSE(host.ok()) << "accepted \"" << contents << "\"";
    EXPECT_THAT(host.status().message(), HasSubstr(meminfo)) << contents;
  }
  const std::string missing_line =
      WriteFile(::testing::TempDir() + "/meminfo_bad", "MemTotal:       16000000 kB\n");
  const absl::StatusOr<HostMemory> host = ReadHostMemory(missing_line, MakeDir("cgroup_for_bad"));
  ASSERT_FALSE(host.ok());
  EXPECT_THAT(host.status().message(), HasSubstr("MemAvailable"));
}

TEST(ReadHostMemory, MalformedCgroupFilesAreErrorsNamingTheFile) {
  const std::string meminfo =
      WriteFile(::testing::TempDir() + "/meminfo_cg", Meminfo(16000000, 12000000));
  const std::string cgroup = MakeDir("cgroup_bad");
  for (const char* contents :
       {"", "\n", "maximum\n", "12abc\n", "-1\n", "1.5\n", "99999999999999999999\n"}) {
    WriteFile(cgroup + "/memory.max", contents);
    WriteFile(cgroup + "/memory.current", "1000\n");
    absl::StatusOr<HostMemory> host = ReadHostMemory(meminfo, cgroup);
    ASSERT_FALSE(host.ok()) << "memory.max \"" << contents << "\" accepted";
    EXPECT_THAT(host.status().message(), HasSubstr(cgroup + "/memory.max")) << contents;

    WriteFile(cgroup + "/memory.max", "1073741824\n");
    WriteFile(cgroup + "/memory.current", contents);
    host = ReadHostMemory(meminfo, cgroup);
    ASSERT_FALSE(host.ok()) << "memory.current \"" << contents << "\" accepted";
    EXPECT_THAT(host.status().message(), HasSubstr(cgroup + "/memory.current")) << contents;
  }
  // A usage is never "max".
  WriteFile(cgroup + "/memory.current", "max\n");
  EXPECT_FALSE(ReadHostMemory(meminfo, cgroup).ok());
  // A file too long to be a cgroup number.
  WriteFile(cgroup + "/memory.max", std::string(200, '1'));
  WriteFile(cgroup + "/memory.current", "1000\n");
  EXPECT_THAT(ReadHostMemory(meminfo, cgroup).status().message(),
              HasSubstr(cgroup + "/memory.max"));
}

TEST(ReadHostMemory, MissingMeminfoIsNotFound) {
  const std::string path = ::testing::TempDir() + "/no_such_meminfo";
  const absl::StatusOr<HostMemory> host = ReadHostMemory(path, MakeDir("cgroup_for_missing"));
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(host.status().message(), HasSubstr(path));
}

// The machine's own files, whatever cgroup this runs in.
TEST(ReadHostMemory, TheRealProcMeminfo) {
  const absl::StatusOr<HostMemory> host = ReadHostMemory();
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_GT(host->total, host->available);
  EXPECT_GT(host->available, 0);
}

}  // namespace
}  // namespace tierserve
