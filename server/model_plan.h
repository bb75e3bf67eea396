// Where a configured model's modules will rest and what every device will
// hold, worked out before any weight is read: the planner behind
// `device_map: auto` (balanced, sequential), the start-up check of an
// explicit map against max_memory and the sim capacity, and what
// `tierserve plan` prints.
#ifndef TIERSERVE_SERVER_MODEL_PLAN_H_
#define TIERSERVE_SERVER_MODEL_PLAN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/model/model_config.h"
#include "runtime/placement/device_map.h"
#include "runtime/placement/plan.h"
#include "server/config.h"

namespace tierserve {

// Fraction of each budget `device_map: auto` keeps free for activations and
// allocator slack. Explicit maps are checked against their budgets whole.
inline constexpr double kPlanHeadroom = 0.05;

// The KV cache blocks of `model` (of `config`'s architecture, `kv_dim`
// floats per key row): kv_cache_bytes, else max_batch_size sequences of
// max_sequence_length (capped at half the machine's memory). Errors name the
// key: kv_cache_bytes beyond the machine or below one sequence.
absl::StatusOr<int64_t> KvCacheBlocks(const ModelServingConfig& model, const ModelConfig& config,
                                      int64_t kv_dim);

struct ModelPlan {
  DeviceMap map;  // explicit: the configured one, or the one auto computed
  PlacementReport report;
  int64_t kv_blocks = 0;
  int64_t kv_block_bytes = 0;
};

// Opens `model`'s files (headers only), checks its device map covers them
// (CheckDeviceMapCoversModel), sizes every module in its precision
// (SizeModel) and places it: an auto map is computed within the budgets; an
// explicit map is measured. Budgets: max_memory per sim:N (capped at the sim
// capacity; an auto map with no accelerator budget and accelerator: sim uses
// sim:0 whole) and cpu; a sim an explicit map names is bounded by its
// capacity. A model that does not fit is a config error naming the key path
// and the figures.
absl::StatusOr<ModelPlan> PlanModel(const ModelServingConfig& model, const ServerConfig& config);

// The plan as text: the device map as YAML one can paste into the config,
// then bytes per device (budget, weights, KV cache, staging, headroom).
std::string FormatPlan(const ModelServingConfig& model, const ModelPlan& plan);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_MODEL_PLAN_H_
