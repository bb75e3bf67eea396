#include "server/model_plan.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/byte_size.h"
#include "runtime/base/config_error.h"
#include "runtime/base/status_macros.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/weight_source.h"
#include "runtime/stream/streamer.h"

namespace tierserve {
namespace {

// The sims an explicit map names, in map order, without repeats.
std::vector<Location> SimsOf(const DeviceMap& map) {
  std::vector<Location> sims;
  for (const DeviceMap::Entry& e : map.entries()) {
    const Location& d = e.placement.device;
    if (d.tier == Location::Tier::kSim && std::find(sims.begin(), sims.end(), d) == sims.end()) {
      sims.push_back(d);
    }
  }
  return sims;
}

std::optional<int64_t> MaxMemory(const ModelServingConfig& model, const Location& device) {
  for (const auto& [d, bytes] : model.max_memory)
    if (d == device) return bytes;
  return std::nullopt;
}

std::string Cell(const std::optional<int64_t>& bytes) {
  return bytes.has_value() ? FormatBytes(*bytes) : "-";
}

}  // namespace

absl::StatusOr<int64_t> KvCacheBlocks(const ModelServingConfig& m, const ModelConfig& config,
                                      int64_t kv_dim) {
  const int64_t context = config.max_position_embeddings;
  const int64_t sequence = std::min(m.max_sequence_length.value_or(context), context);
  const int64_t per_sequence = (sequence + m.kv_block_tokens - 1) / m.kv_block_tokens;
  const int64_t block_bytes = KvBlockPool::BytesPerBlock(config.num_layers, kv_dim, m.kv_block_tokens, m.kv_cache_dtype);
  const int64_t physical = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  if (!m.kv_cache_bytes.has_value()) {
    // Capped at half the machine's memory: pages are committed as blocks
    // fill, but the reservation must still be granted.
    return std::max(per_sequence, std::min(m.max_batch_size * per_sequence, physical / 2 / block_bytes));
  }
  if (*m.kv_cache_bytes > physical) {
    return absl::InvalidArgumentError(absl::StrCat(m.kv_cache_bytes_key, ": ", *m.kv_cache_bytes,
                                                   " bytes is more than this machine's memory (", physical,
                                                   " bytes)"));
  }
  const int64_t blocks = *m.kv_cache_bytes / block_bytes;
  if (blocks < per_sequence) {
    return absl::InvalidArgumentError(absl::StrCat(
        m.kv_cache_bytes_key, ": ", *m.kv_cache_bytes, " bytes hold ", blocks, " KV blocks of ",
        m.kv_block_tokens, " tokens (", block_bytes, " bytes each); one sequence of max_sequence_length ",
        sequence, " needs ", per_sequence, " blocks (", per_sequence * block_bytes,
        " bytes): raise kv_cache_bytes or lower max_sequence_length"));
  }
  return std::min<int64_t>(blocks, std::numeric_limits<int32_t>::max());
}

absl::StatusOr<ModelPlan> PlanModel(const ModelServingConfig& model, const ServerConfig& config) {
  const std::string& source = config.source;
  const std::string map_key = model.device_map.key_path().empty()
                                  ? ChildKeyPath(model.key_path, "device_map")
                                  : model.device_map.key_path();
  absl::StatusOr<std::unique_ptr<WeightSource>> weights = WeightSource::Open(model.path);
  if (!weights.ok()) {
    return ConfigError(
        source, model.key_path == "--model" ? "--model" : ChildKeyPath(model.key_path, "path"),
        weights.status().message());
  }
  TS_RETURN_IF_ERROR(CheckDeviceMapCoversModel(model, **weights, source));
  const ModelConfig& mc = (*weights)->config();
  ModelPlan plan;
  plan.kv_block_bytes = KvBlockPool::BytesPerBlock(mc.num_layers, mc.num_kv_heads * mc.head_dim,
                                                   model.kv_block_tokens, model.kv_cache_dtype);
  TS_ASSIGN_OR_RETURN(plan.kv_blocks, KvCacheBlocks(model, mc, mc.num_kv_heads * mc.head_dim));

  Budgets budgets;
  budgets.cpu = MaxMemory(model, Location{Location::Tier::kCpu, 0});
  budgets.disk = !model.offload_folder.empty();
  budgets.kv_bytes = plan.kv_blocks * plan.kv_block_bytes;
  budgets.staging_slots = static_cast<int>(model.prefetch_depth) + Streamer::kMaxHeld;
  auto sim_budget = [&](const Location& sim) {
    return std::min(MaxMemory(model, sim).value_or(config.sim_memory_bytes), config.sim_memory_bytes);
  };

  if (model.device_map.is_auto()) {
    for (const auto& [device, bytes] : model.max_memory) {
      if (device.tier == Location::Tier::kSim) budgets.accelerators.emplace_back(device, sim_budget(device));
    }
    if (budgets.accelerators.empty() && model.accelerator == "sim") {
      const Location sim0{Location::Tier::kSim, 0};
      budgets.accelerators.emplace_back(sim0, sim_budget(sim0));
    }
    budgets.headroom = kPlanHeadroom;
    Location execution{Location::Tier::kCpu, 0};
    for (const auto& [device, bytes] : budgets.accelerators) {
      if (execution.tier == Location::Tier::kCpu || device.index < execution.index) execution = device;
    }
    absl::StatusOr<std::vector<ModuleSize>> sizes =
        SizeModel(**weights, model.quantization, model.device_map, execution);
    if (!sizes.ok()) return ConfigError(source, ChildKeyPath(model.key_path, "path"), sizes.status().message());
    absl::StatusOr<PlacementReport> report =
        PlanPlacement(*sizes, model.device_map.strategy(), budgets);
    if (!report.ok()) {
      const bool no_disk = absl::StrContains(report.status().message(), "no offload folder");
      return ConfigError(
          source, map_key,
          absl::StrCat(PlanStrategyName(model.device_map.strategy()), " cannot place the model: ",
                       report.status().message(),
                       no_disk ? "; raise max_memory.cpu, or set offload_folder to spill to disk"
                               : "; raise max_memory (or server.sim_device.memory), or lower "
                                 "prefetch_depth for less staging"));
    }
    plan.report = *std::move(report);
    plan.map = plan.report.ToDeviceMap(source, map_key);
    return plan;
  }

  // An explicit map: what it puts where, within its budgets.
  for (const Location& sim : SimsOf(model.device_map)) budgets.accelerators.emplace_back(sim, sim_budget(sim));
  budgets.headroom = 0;
  const Location execution = ExecutionLocation(model.device_map);
  absl::StatusOr<std::vector<ModuleSize>> sizes =
      SizeModel(**weights, model.quantization, model.device_map, execution);
  if (!sizes.ok()) return ConfigError(source, ChildKeyPath(model.key_path, "path"), sizes.status().message());
  std::vector<Location> where;
  for (const GroupSize& g : GroupSizes(*sizes)) {
    absl::StatusOr<Placement> p = model.device_map.Resolve(g.name + ".weight");
    if (!p.ok()) return ConfigError(source, map_key, p.status().message());
    where.push_back(p->device);
  }
  plan.report = MeasurePlacement(*sizes, where, execution, budgets);
  if (std::string over = plan.report.Overflow(); !over.empty()) {
    return ConfigError(source, model.max_memory.empty() ? map_key : ChildKeyPath(model.key_path, "max_memory"),
                       absl::StrCat("the device map does not fit: ", over,
                                    "; place fewer modules there, or raise the budget"));
  }
  plan.map = model.device_map;
  return plan;
}

std::string FormatPlan(const ModelServingConfig& model, const ModelPlan& plan) {
  const PlacementReport& r = plan.report;
  std::string out = absl::StrCat("model ", model.name, " (", model.path, ")\n");
  absl::StrAppend(&out, "  execution device: ", r.execution.ToString(), "\n");
  absl::StrAppend(&out, "  device_map:", model.device_map.is_auto()
                                              ? absl::StrCat("  # planned: ",
                                                             PlanStrategyName(model.device_map.strategy()))
                                              : "",
                  "\n");
  const std::string* previous = nullptr;
  for (const DeviceMap::Entry& e : plan.map.entries()) {
    if (previous != nullptr && *previous == e.key) continue;  // a range, expanded
    previous = &e.key;
    absl::StrAppend(&out, "    \"", e.key, "\": ", e.placement.ToString(), "\n");
  }
  absl::StrAppend(&out, "  kv cache: ", FormatBytes(r.kv_bytes), " (", plan.kv_blocks, " blocks of ",
                  model.kv_block_tokens, " tokens, ", FormatBytes(plan.kv_block_bytes), " each)\n");
  absl::StrAppend(&out, absl::StrFormat("  %-8s %10s %10s %10s %10s %10s %10s %7s\n", "device",
                                        "budget", "weights", "kv cache", "staging", "headroom",
                                        "total", "groups"));
  for (const DeviceUsage& u : r.devices) {
    absl::StrAppend(&out, absl::StrFormat("  %-8s %10s %10s %10s %10s %10s %10s %7d\n",
                                          u.device.ToString(), Cell(u.budget),
                                          FormatBytes(u.weights), FormatBytes(u.kv),
                                          FormatBytes(u.staging), FormatBytes(u.headroom),
                                          FormatBytes(u.total()), u.groups));
  }
  return out;
}

}  // namespace tierserve
