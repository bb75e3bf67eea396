#include "server/metrics/device_memory_collector.h"

namespace tierserve {

std::vector<prometheus::MetricFamily> DeviceMemoryCollector::Collect() const {
  prometheus::MetricFamily bytes;
  bytes.name = kDeviceMemoryMetric;
  bytes.help =
      "Bytes allocated on each device by kind: weights (modules resting there; on disk, the "
      "offload files), staging (the streamer's pool), kv (the KV block pools, reserved whole at "
      "load), scratch (activations landed from another device), from the device layer's "
      "accounting at each scrape.";
  bytes.type = prometheus::MetricType::Gauge;
  prometheus::MetricFamily capacity;
  capacity.name = kDeviceCapacityMetric;
  capacity.help =
      "Memory capacity of each device where known: for the host (cpu), its RAM, or its cgroup's "
      "memory limit if lower, read at each scrape; for an accelerator (sim:N, cuda:N), its fixed "
      "capacity.";
  capacity.type = prometheus::MetricType::Gauge;
  prometheus::MetricFamily free_memory;
  free_memory.name = kDeviceFreeMetric;
  free_memory.help =
      "Memory left on each device where known: for the host (cpu), MemAvailable, or what its "
      "cgroup's memory limit leaves if less, read at each scrape (other processes use it too); for "
      "an accelerator (sim:N, cuda:N), its capacity less tierserve's allocations on it.";
  free_memory.type = prometheus::MetricType::Gauge;
  for (const DeviceMemoryReading& r : reader_()) {
    for (const auto& [kind, value] : r.by_kind) {
      prometheus::ClientMetric sample;
      sample.label = {{"device", r.device}, {"kind", kind}};
      sample.gauge.value = static_cast<double>(value);
      bytes.metric.push_back(std::move(sample));
    }
    if (r.capacity >= 0) {
      prometheus::ClientMetric sample;
      sample.label = {{"device", r.device}};
      sample.gauge.value = static_cast<double>(r.capacity);
      capacity.metric.push_back(std::move(sample));
    }
    if (r.free >= 0) {
      prometheus::ClientMetric sample;
      sample.label = {{"device", r.device}};
      sample.gauge.value = static_cast<double>(r.free);
      free_memory.metric.push_back(std::move(sample));
    }
  }
  std::vector<prometheus::MetricFamily> families;
  if (!bytes.metric.empty()) families.push_back(std::move(bytes));
  if (!capacity.metric.empty()) families.push_back(std::move(capacity));
  if (!free_memory.metric.empty()) families.push_back(std::move(free_memory));
  return families;
}

}  // namespace tierserve
