// The host's memory as a process on it can use it: the machine's RAM from
// /proc/meminfo, bounded by the cgroup v2 limit of the process' cgroup.
//
// In a container, /proc/meminfo describes the whole machine, while the limit
// the container was started with (docker --memory) is the memory.max of its
// own cgroup, which a cgroup namespace mounts at /sys/fs/cgroup. Both are read
// so that the figures say what this process can have, not what the machine has.
#ifndef TIERSERVE_SERVER_METRICS_HOST_MEMORY_H_
#define TIERSERVE_SERVER_METRICS_HOST_MEMORY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tierserve {

// Bytes.
struct HostMemory {
  int64_t total = 0;      // MemTotal, or the cgroup's memory.max if lower
  int64_t available = 0;  // MemAvailable, or what the cgroup has left if less
};

// Reads MemTotal and MemAvailable (kB) from `meminfo_path` and, from
// `cgroup_dir`, the cgroup v2 files memory.max and memory.current:
//
//   total     = min(MemTotal, memory.max)
//   available = min(MemAvailable, max(0, memory.max - memory.current), total)
//
// memory.max reading "max", or missing (the root cgroup, cgroup v1, no
// cgroup mount), means no limit; a missing memory.current means no usage
// is subtracted. The paths are parameters so tests can feed files of their
// own. Fails, naming the file, when meminfo cannot be read or lacks either
// line, or when a file holds something other than a byte count.
//
// Thread-safety: reads files only; safe to call concurrently.
absl::StatusOr<HostMemory> ReadHostMemory(const std::string& meminfo_path = "/proc/meminfo",
                                          const std::string& cgroup_dir = "/sys/fs/cgroup");

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_METRICS_HOST_MEMORY_H_
