#include "server/metrics/device_memory_collector.h"

#include <atomic>
#include <memory>

#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/metrics.h"

namespace tierserve {
namespace {

TEST(DeviceMemoryCollector, ReadsTheDevicesAtEachScrape) {
  std::atomic<int64_t> weights{100};
  DeviceMemoryCollector collector([&weights] {
    return std::vector<DeviceMemoryReading>{
        {"cpu", {{"weights", weights.load()}, {"staging", 7}}, -1},
        {"sim:0", {{"weights", 5}, {"staging", 0}}, 1 << 20}};
  });
  std::string text = prometheus::TextSerializer().Serialize(collector.Collect());
  EXPECT_NE(text.find("tierserve_device_memory_bytes{device=\"cpu\",kind=\"weights\"} 100"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tierserve_device_memory_bytes{device=\"sim:0\",kind=\"weights\"} 5"),
            std::string::npos);
  // Only the device given a capacity reports one; neither was given free memory.
  EXPECT_NE(text.find("tierserve_device_memory_capacity_bytes{device=\"sim:0\"} 1048576"),
            std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_capacity_bytes{device=\"cpu\"}"), std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_free_bytes"), std::string::npos);
  weights = 250;
  text = prometheus::TextSerializer().Serialize(collector.Collect());
  EXPECT_NE(text.find("tierserve_device_memory_bytes{device=\"cpu\",kind=\"weights\"} 250"),
            std::string::npos);
}

TEST(DeviceMemoryCollector, ExportsCapacityAndFreeWhereGiven) {
  DeviceMemoryCollector collector([] {
    DeviceMemoryReading cpu{"cpu", {{"weights", 100}}, int64_t{16} << 30};
    cpu.free = int64_t{12} << 30;
    DeviceMemoryReading sim{"sim:0", {{"weights", 5}}, 1 << 20};
    sim.free = (1 << 20) - 5;
    // A capacity without a free figure, and a device with neither.
    DeviceMemoryReading sim1{"sim:1", {{"weights", 0}}, 4096};
    DeviceMemoryReading disk{"disk", {{"weights", 9}}, -1};
    return std::vector<DeviceMemoryReading>{cpu, sim, sim1, disk};
  });
  const std::string text = prometheus::TextSerializer().Serialize(collector.Collect());
  EXPECT_NE(text.find("# TYPE tierserve_device_memory_free_bytes gauge"), std::string::npos) << text;
  EXPECT_NE(text.find("tierserve_device_memory_capacity_bytes{device=\"cpu\"} 17179869184"),
            std::string::npos);
  EXPECT_NE(text.find("tierserve_device_memory_free_bytes{device=\"cpu\"} 12884901888"),
            std::string::npos);
  EXPECT_NE(text.find("tierserve_device_memory_free_bytes{device=\"sim:0\"} 1048571"),
            std::string::npos);
  EXPECT_NE(text.find("tierserve_device_memory_capacity_bytes{device=\"sim:1\"} 4096"),
            std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_free_bytes{device=\"sim:1\"}"), std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_capacity_bytes{device=\"disk\"}"), std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_free_bytes{device=\"disk\"}"), std::string::npos);
}

TEST(DeviceMemoryCollector, ServerMetricsServeAnAddedCollector) {
  ServerMetrics metrics;
  metrics.AddCollectable(std::make_shared<DeviceMemoryCollector>(
      [] { return std::vector<DeviceMemoryReading>{{"cpu", {{"staging", 42}}, -1}}; }));
  EXPECT_NE(metrics.ExpositionText().find(
                "tierserve_device_memory_bytes{device=\"cpu\",kind=\"staging\"} 42"),
            std::string::npos);
}

}  // namespace
}  // namespace tierserve
