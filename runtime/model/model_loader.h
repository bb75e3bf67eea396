// Loads a model of any supported architecture from a GGUF file or HF folder,
// each module in the precision and placement its options give it.
#ifndef TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_
#define TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/base/thread_pool.h"
#include "runtime/device/device_set.h"
#include "runtime/model/causal_lm.h"
#include "runtime/model/weight_source.h"
#include "runtime/placement/device_map.h"
#include "runtime/placement/module_report.h"
#include "runtime/placement/plan.h"
#include "runtime/placement/quantization_config.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

// How far a load has come, reported after each module it loads.
struct LoadProgress {
  const ModuleRecord* module = nullptr;  // the module just loaded (its precision: read or quantized)
  int64_t parameters_done = 0;           // of the modules loaded so far
  int64_t parameters_total = 0;          // of every tensor in the source
};

struct ModelLoadOptions {
  // bitsandbytes-style quantization of the linear layers; off by default.
  QuantizationConfig quantization;
  // Placements and explicit precisions; empty: everything on the cpu as stored.
  DeviceMap device_map;
  // The compute pool the model runs on; must outlive the model. Required.
  ThreadPool* pool = nullptr;
  // The file disk-placed modules are written to and streamed back from;
  // required when the device map places anything on disk.
  std::string offload_path;
  // Offloaded groups read ahead of the one in use.
  int prefetch_depth = 2;
  // The host and the sim:N devices the map may name; must outlive the model.
  // nullptr: a process-wide set with default sim options.
  DeviceSet* devices = nullptr;
  // The activations the block weights (Q4_0, Q4_1, Q8_0 as stored) multiply.
  ActivationPrecision activations = ActivationPrecision::kFp32;
  // Called on the loading thread after each module (optional).
  std::function<void(const LoadProgress&)> on_progress;
};

// Where the math runs for `map`: the first sim:N placement in the map's
// order, else the cpu.
Location ExecutionLocation(const DeviceMap& map);

// A loaded model with what it needs to serve text: its weights' source (kept
// open: fp32 vectors such as norm weights may be views into its mapped
// files), its tokenizer, and where each module rests in which precision.
struct LoadedModel {
  std::unique_ptr<WeightSource> source;
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model ships none
  std::vector<ModuleRecord> modules;     // in load order
  std::string execution_device = "cpu";  // where the math runs: "cpu" or "sim:N"
  // Notes worth a warning line (a skip module that matched nothing).
  std::vector<std::string> warnings;
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const ModelLoadOptions& options);

// What each module of the model in `source` weighs in the precision it would
// take with `quantization` and the explicit precisions of `device_map`, on
// the execution device `execution` and off it: the planner's input. Reads
// no weights (ModuleLoader::Pass::kSize); checks every tensor's shape.
absl::StatusOr<std::vector<ModuleSize>> SizeModel(const WeightSource& source,
                                                  const QuantizationConfig& quantization,
                                                  const DeviceMap& device_map,
                                                  const Location& execution);
// Everything on the cpu, as stored.
inline absl::StatusOr<LoadedModel> LoadModel(const std::string& path, ThreadPool* pool) {
  ModelLoadOptions options;
  options.pool = pool;
  return LoadModel(path, options);
}

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_
