// Memory by device and kind, read from the device layer's accounting at
// each scrape: what rests where (weights), what the streamer stages
// (staging), and each device's capacity and free memory where they are known.
//
// The collector knows nothing of the runtime: it calls a reader the server
// gives it, so the metrics library stays free of model code.
//
// Thread-safety: Collect() may be called from any thread; the reader must be
// safe to call concurrently.
#ifndef TIERSERVE_SERVER_METRICS_DEVICE_MEMORY_COLLECTOR_H_
#define TIERSERVE_SERVER_METRICS_DEVICE_MEMORY_COLLECTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace tierserve {

inline constexpr char kDeviceMemoryMetric[] = "tierserve_device_memory_bytes";
inline constexpr char kDeviceCapacityMetric[] = "tierserve_device_memory_capacity_bytes";
inline constexpr char kDeviceFreeMetric[] = "tierserve_device_memory_free_bytes";

// One device's figures.
struct DeviceMemoryReading {
  std::string device;                                     // "cpu", "sim:0"
  std::vector<std::pair<std::string, int64_t>> by_kind;  // ("weights", bytes), ...
  int64_t capacity = -1;  // the host's usable RAM, an accelerator's fixed size; -1: unknown
  int64_t free = -1;      // of the capacity, what is left for more; -1: unknown
};

class DeviceMemoryCollector : public prometheus::Collectable {
 public:
  using Reader = std::function<std::vector<DeviceMemoryReading>()>;
  explicit DeviceMemoryCollector(Reader reader) : reader_(std::move(reader)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Reader reader_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_METRICS_DEVICE_MEMORY_COLLECTOR_H_
