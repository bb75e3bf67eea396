// Planning placements from sizes: what each device holds under a device map
// (weights, KV cache, staging, headroom), and `device_map: auto` — a map
// computed from per-device memory budgets, as accelerate's
// infer_auto_device_map does, but with each module's size in the precision
// it will rest in (quantized on the execution device; fp32 off it when
// llm_int8_enable_fp32_cpu_offload says so).
//
// The sizes come from a sizing pass over the model (SizeModel in
// runtime/model/model_loader.h), which reads no weights; this file is pure
// arithmetic over them.
//
// Where bytes go, for a map and its execution device E (the first
// accelerator it names, else the host):
//   - a group on an accelerator rests there in its resident size; a decoder
//     layer's share of the KV cache lives with it;
//   - a group on `cpu` rests in host memory: in its resident size when E is
//     the host, else in its offloaded size; on `disk`, in its offloaded size
//     in the offload file. The KV share of an offloaded layer lives on E;
//   - when any group is offloaded (cpu while E is an accelerator, or disk),
//     E holds the streamer's staging: `staging_slots` slots of the largest
//     offloaded group (packed, GroupSize::staged_bytes); when a group is on disk and E is not the host, the
//     host holds as many slots again (disk reads land there first);
//   - fp32 vectors (norms, biases, position tables) always rest in host
//     memory;
//   - every bounded device keeps `headroom` of its budget free (activations,
//     allocator slack).
//
// Thread-safety: pure functions.
#ifndef TIERSERVE_RUNTIME_PLACEMENT_PLAN_H_
#define TIERSERVE_RUNTIME_PLACEMENT_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/placement/device_map.h"
#include "runtime/placement/precision.h"

namespace tierserve {

// One module as the sizing pass found it.
struct ModuleSize {
  std::string group;   // what it streams with: a decoder layer's path, else its own
  std::string module;  // its path, e.g. model.layers.3.mlp.up_proj
  bool layer = false;      // inside a decoder layer (the group holds a KV share)
  bool host_only = false;  // an fp32 vector: rests in host memory wherever it is placed
  int64_t parameters = 0;
  // Image bytes resting on the device that computes it, and resting off it
  // (cpu while an accelerator computes, disk).
  int64_t resident_bytes = 0;
  int64_t offloaded_bytes = 0;
  Precision resident_precision = Precision::kFp32;
  Precision offloaded_precision = Precision::kFp32;
};

// One placement group in execution order, with its sizes summed.
struct GroupSize {
  std::string name;
  bool layer = false;
  int64_t resident_bytes = 0;
  int64_t offloaded_bytes = 0;
  // The offloaded images packed as the streamer stages them, each starting
  // 64-byte aligned: one staging slot's worth, and its bytes in the file.
  int64_t staged_bytes = 0;
};
// The groups of `modules` in order of first appearance; host_only modules
// belong to none.
std::vector<GroupSize> GroupSizes(const std::vector<ModuleSize>& modules);

// What one device holds.
struct DeviceUsage {
  Location device;
  std::optional<int64_t> budget;  // max_memory (or capacity); none: unbounded
  int64_t weights = 0;
  int64_t kv = 0;
  int64_t staging = 0;
  int64_t headroom = 0;  // kept free of the budget
  int groups = 0;        // placement groups resting here
  int64_t total() const { return weights + kv + staging + headroom; }
};

struct PlacementReport {
  Location execution;
  // Each group's placement, in execution order.
  std::vector<std::pair<std::string, Location>> groups;
  // Accelerators by index, then cpu, then disk (each present when it holds
  // something or has a budget).
  std::vector<DeviceUsage> devices;
  int64_t kv_bytes = 0;  // the whole KV reservation

  const DeviceUsage* Find(const Location& device) const;
  // The map that places each group where the report does.
  DeviceMap ToDeviceMap(std::string source, std::string key_path) const;
  // The first device whose total exceeds its budget, as one line of figures;
  // "" when everything fits.
  std::string Overflow() const;
};

struct Budgets {
  // Usable memory per accelerator (sim:N or cuda:N), any order.
  std::vector<std::pair<Location, int64_t>> accelerators;
  std::optional<int64_t> cpu;  // none: unbounded
  bool disk = false;           // an offload folder exists
  int64_t kv_bytes = 0;        // the KV cache, split evenly over the decoder layers
  int staging_slots = 3;       // prefetch depth + the one in use
  double headroom = 0.05;      // fraction of each bounded budget kept free
};

// The bytes each device holds when group i rests on `where(group name)`.
// `execution` is where the math runs.
PlacementReport MeasurePlacement(const std::vector<ModuleSize>& modules,
                                 const std::vector<Location>& group_locations,
                                 const Location& execution, const Budgets& budgets);

// `device_map: auto`: groups in execution order fill the accelerators in
// index order (`sequential`: each to its budget; `balanced` and `auto`: all
// but the last accelerator to an even share of what the accelerators are to
// hold plus the largest group, as accelerate balances), then the cpu, then
// disk. A group goes to the next device when it does not fit whole; nothing
// is split. ResourceExhausted with the figures when the model does not fit
// (no disk to spill to, or disk not allowed).
absl::StatusOr<PlacementReport> PlanPlacement(const std::vector<ModuleSize>& modules,
                                              PlanStrategy strategy, const Budgets& budgets);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_PLACEMENT_PLAN_H_
