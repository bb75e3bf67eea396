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
  // Only the device with a fixed capacity reports one.
  EXPECT_NE(text.find("tierserve_device_memory_capacity_bytes{device=\"sim:0\"} 1048576"),
            std::string::npos);
  EXPECT_EQ(text.find("tierserve_device_memory_capacity_bytes{device=\"cpu\"}"), std::string::npos);
  weights = 250;
  text = prometheus::TextSerializer().Serialize(collector.Collect());
  EXPECT_NE(text.find("tierserve_device_memory_bytes{device=\"cpu\",kind=\"weights\"} 250"),
            std::string::npos);
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
