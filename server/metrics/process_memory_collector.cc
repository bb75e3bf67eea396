#include "server/metrics/process_memory_collector.h"

#include <unistd.h>

#include <charconv>
#include <limits>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"
#include "runtime/base/bounded_read.h"

namespace tierserve {
namespace {

// statm is seven decimal numbers on one line, well under this.
constexpr int64_t kMaxStatmBytes = 512;

absl::Status StatmError(const std::string& path, std::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", absl::string_view(what.data(), what.size())));
}

}  // namespace

absl::StatusOr<int64_t> ReadResidentMemoryBytes(const std::string& statm_path) {
  const absl::StatusOr<std::string> statm = ReadFileUpTo(statm_path, kMaxStatmBytes);
  if (!statm.ok()) return statm.status();

  // Skip the first field (total program size) and parse the second.
  const std::string_view text(*statm);
  const size_t first_end = text.find(' ');
  if (first_end == std::string_view::npos) {
    return StatmError(statm_path, "expected at least two space-separated page counts");
  }
  const std::string_view rest = text.substr(first_end + 1);
  uint64_t pages = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pages);
  if (ec != std::errc() || end == rest.data() ||
      (end != rest.data() + rest.size() && *end != ' ' && *end != '\n')) {
    return StatmError(statm_path, "the second field (resident pages) is not a decimal count");
  }
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return absl::InternalError("sysconf(_SC_PAGESIZE) failed");
  if (pages > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / page_size)) {
    return StatmError(statm_path, "resident page count overflows a byte count");
  }
  return static_cast<int64_t>(pages) * page_size;
}

std::vector<prometheus::MetricFamily> ProcessMemoryCollector::Collect() const {
  const absl::StatusOr<int64_t> bytes = ReadResidentMemoryBytes(statm_path_);
  if (!bytes.ok()) return {};
  prometheus::MetricFamily family;
  family.name = kResidentMemoryMetric;
  family.help = "Resident set size of the tierserve process, read from /proc/self/statm at each scrape.";
  family.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric sample;
  sample.gauge.value = static_cast<double>(*bytes);
  family.metric.push_back(std::move(sample));
  return {std::move(family)};
}

}  // namespace tierserve
