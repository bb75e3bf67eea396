#include "server/metrics/process_memory_collector.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_type.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

int64_t PageSize() { return ::sysconf(_SC_PAGESIZE); }

TEST(ReadResidentMemoryBytes, SecondFieldTimesPageSize) {
  const std::string path = WriteFile("statm_ok", "1000 250 30 10 0 200 0\n");
  const absl::StatusOr<int64_t> bytes = ReadResidentMemoryBytes(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 250 * PageSize());
}

TEST(ReadResidentMemoryBytes, MalformedFilesAreErrorsNamingTheFile) {
  for (const char* contents : {"", "1000", "1000 ", "1000 abc 3", "1000 -5 3", "1000 12x 3",
                               "1000 99999999999999999999 3"}) {
    const std::string path = WriteFile("statm_bad", contents);
    const absl::StatusOr<int64_t> bytes = ReadResidentMemoryBytes(path);
    ASSERT_FALSE(bytes.ok()) << "accepted \"" << contents << "\" as " << *bytes;
    EXPECT_THAT(bytes.status().message(), HasSubstr(path)) << contents;
  }
}

TEST(ReadResidentMemoryBytes, MissingFileIsNotFound) {
  const std::string path = ::testing::TempDir() + "/no_such_statm";
  const absl::StatusOr<int64_t> bytes = ReadResidentMemoryBytes(path);
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(bytes.status().message(), HasSubstr(path));
}

// The real procfs value follows memory the process touches.
TEST(ReadResidentMemoryBytes, ProcSelfGrowsWithTouchedMemory) {
  const absl::StatusOr<int64_t> before = ReadResidentMemoryBytes("/proc/self/statm");
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_GT(*before, 0);
  constexpr size_t kTouched = 64 << 20;
  auto block = std::make_unique<char[]>(kTouched);
  std::memset(block.get(), 1, kTouched);
  const absl::StatusOr<int64_t> after = ReadResidentMemoryBytes("/proc/self/statm");
  ASSERT_TRUE(after.ok()) << after.status();
  // 60 of the 64 MiB: leaves room for pages the allocator had already mapped.
  EXPECT_GE(*after - *before, int64_t{60} << 20);
  EXPECT_EQ(block[kTouched - 1], 1);
}

TEST(ProcessMemoryCollector, ExportsOneGaugeReadAtEachCollect) {
  const std::string path = WriteFile("statm_collect", "1000 250 30 10 0 200 0\n");
  const ProcessMemoryCollector collector(path);
  auto families = collector.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, "tierserve_process_resident_memory_bytes");
  EXPECT_EQ(families[0].type, prometheus::MetricType::Gauge);
  ASSERT_EQ(families[0].metric.size(), 1u);
  EXPECT_EQ(families[0].metric[0].gauge.value, static_cast<double>(250 * PageSize()));
  EXPECT_TRUE(families[0].metric[0].label.empty());

  WriteFile("statm_collect", "1000 400 30 10 0 200 0\n");
  families = collector.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].metric[0].gauge.value, static_cast<double>(400 * PageSize()));
}

TEST(ProcessMemoryCollector, UnreadableFileLeavesTheMetricOut) {
  const ProcessMemoryCollector collector(::testing::TempDir() + "/no_such_statm");
  EXPECT_TRUE(collector.Collect().empty());
}

}  // namespace
}  // namespace tierserve
