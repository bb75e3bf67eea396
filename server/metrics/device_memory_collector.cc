#include "server/metrics/device_memory_collector.h"

namespace tierserve {

namespace {

prometheus::MetricFamily Gauges(const char* name, const char* help) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void Add(prometheus::MetricFamily* family, std::vector<prometheus::ClientMetric::Label> labels,
         int64_t value) {
  prometheus::ClientMetric sample;
  sample.label = std::move(labels);
  sample.gauge.value = static_cast<double>(value);
  family->metric.push_back(std::move(sample));
}

}  // namespace

std::vector<prometheus::MetricFamily> DeviceMemoryCollector::Collect() const {
  prometheus::MetricFamily bytes = Gauges(
      kDeviceMemoryMetric,
      "Bytes allocated on each device by kind: weights (modules resting there; on disk, the "
      "offload files), staging (the streamer's pool), kv (the KV block pools, reserved whole at "
      "load), scratch (activations landed from another device), from the device layer's "
      "accounting at each scrape.");
  prometheus::MetricFamily capacity = Gauges(
      kDeviceCapacityMetric,
      "Memory capacity of each device where known: for the host (cpu), its RAM, or its cgroup's "
      "memory limit if lower, read at each scrape; for an accelerator (sim:N, cuda:N), its fixed "
      "capacity.");
  prometheus::MetricFamily free_memory = Gauges(
      kDeviceFreeMetric,
      "Memory left on each device where known: for the host (cpu), MemAvailable, or what its "
      "cgroup's memory limit leaves if less, read at each scrape (other processes use it too); for "
      "an accelerator (sim:N, cuda:N), its capacity less tierserve's allocations on it.");
  for (const DeviceMemoryReading& r : reader_()) {
    for (const auto& [kind, value] : r.by_kind) Add(&bytes, {{"device", r.device}, {"kind", kind}}, value);
    if (r.capacity >= 0) Add(&capacity, {{"device", r.device}}, r.capacity);
    if (r.free >= 0) Add(&free_memory, {{"device", r.device}}, r.free);
  }
  std::vector<prometheus::MetricFamily> families;
  for (prometheus::MetricFamily* f : {&bytes, &capacity, &free_memory}) {
    if (!f->metric.empty()) families.push_back(std::move(*f));
  }
  return families;
}

}  // namespace tierserve
