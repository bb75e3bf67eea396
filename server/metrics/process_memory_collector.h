// The resident memory of the server process, read from procfs at each scrape.
//
// A gauge refreshed on a timer would report a value as old as the timer
// period, and would need a thread; a prometheus::Collectable is asked for its
// value exactly when /metrics is served, so it reads /proc/self/statm then.
#ifndef TIERSERVE_SERVER_METRICS_PROCESS_MEMORY_COLLECTOR_H_
#define TIERSERVE_SERVER_METRICS_PROCESS_MEMORY_COLLECTOR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace tierserve {

// Name of the gauge the collector exports.
inline constexpr char kResidentMemoryMetric[] = "tierserve_process_resident_memory_bytes";

// Resident set size in bytes from a statm file (Linux proc(5): seven
// page counts; the second is the resident set). The path is a parameter so
// tests can feed a file of their own. Fails, naming the file, when it cannot
// be read or its second field is not a page count.
absl::StatusOr<int64_t> ReadResidentMemoryBytes(const std::string& statm_path);

// Exports kResidentMemoryMetric as a gauge. When the statm file cannot be
// read the family is left out of the scrape (a missing sample is honest; a
// stale or zero one would not be).
//
// Thread-safety: Collect() may be called from any thread, concurrently; the
// object is immutable after construction.
class ProcessMemoryCollector : public prometheus::Collectable {
 public:
  explicit ProcessMemoryCollector(std::string statm_path = "/proc/self/statm")
      : statm_path_(std::move(statm_path)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string statm_path_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_METRICS_PROCESS_MEMORY_COLLECTOR_H_
