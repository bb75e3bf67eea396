// Loads a model's modules from its WeightSource in the precision and
// placement the load options give each one, and records what it loaded.
// The architectures call it module by module, in order:
//
//   TS_ASSIGN_OR_RETURN(L.q_proj, loader.LoadLinear(p + "self_attn.q_proj", H, qd, bias));
//
// Precision of a linear module: the device map's explicit precision for it,
// else the quantization config's (int8, nf4, fp4; skip list aside), else as
// stored (GGUF Q8_0/Q4_0/Q4_1 blocks stay as they are; other types become
// fp32). With llm_int8_enable_fp32_cpu_offload, a quantization config leaves
// the modules on disk in fp32, as transformers leaves offloaded modules. A quantized module is read as fp32, quantized, and its fp32 copy
// dropped before the next module is read, so loading peaks near the
// quantized size. Embeddings and norms are never quantized, as in
// bitsandbytes, which replaces only linear layers.
//
// Placement, with `cpu` or a `sim:N` as the execution device: a module on
// `disk` has its image written to the offload file in its final precision
// and its memory freed; a module on `cpu` rests in host memory, computed in
// place on a cpu execution device, else copied over the link at each use; a
// module on a `sim:N` rests in that device's memory (its capacity checked).
// The streamer stages offloaded groups to the execution device when they
// are acquired. The architectures group a decoder layer's
// modules (BeginGroup/EndGroup): a group is never split across placements.
// A linear module loaded outside a group is a group of its own. fp32
// vectors (norm weights, biases, position tables; well under 1% of a
// model's bytes) stay in memory whatever their placement, and are reported
// as resting on the cpu.
//
// Thread-safety: one loader per load, on one thread.
#ifndef TIERSERVE_RUNTIME_MODEL_MODULE_LOADER_H_
#define TIERSERVE_RUNTIME_MODEL_MODULE_LOADER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/device/device_set.h"
#include "runtime/device/kernels.h"
#include "runtime/model/linear.h"
#include "runtime/model/weight_source.h"
#include "runtime/placement/device_map.h"
#include "runtime/placement/module_report.h"
#include "runtime/placement/plan.h"
#include "runtime/placement/quantization_config.h"
#include "runtime/quant/quantize_weight.h"
#include "runtime/stream/offload_file.h"
#include "runtime/stream/streamer.h"

namespace tierserve {

// The devices placements name, and where disk-tier modules go.
struct OffloadOptions {
  // The host and the sim:N devices; required. Must outlive the model.
  DeviceSet* devices = nullptr;
  // Where the math runs: cpu or a sim:N the map names.
  Location execution{Location::Tier::kCpu, 0};
  std::string path;        // the offload file; required when a module is on disk
  int prefetch_depth = 2;  // Streamer::Options::depth
};

class ModuleLoader {
 public:
  // kLoad reads, converts and places every module. kSize reads no weights:
  // it checks each tensor's shape and records what the module would weigh
  // in the precision it would take on the execution device and off it
  // (sizes()), for the planner; the Linears it returns hold no weight and
  // the model it builds is never run.
  enum class Pass { kLoad, kSize };

  // `device_map` may be empty (everything on the cpu) or auto (everything on
  // the cpu for kLoad; no placement needed for kSize). Both must outlive the
  // loader.
  ModuleLoader(const WeightSource& src, const QuantizationConfig& quantization,
               const DeviceMap& device_map, OffloadOptions offload = {}, Pass pass = Pass::kLoad);

  const WeightSource& source() const { return src_; }
  // The kernel table of the execution device: what the model runs on its
  // activations, and which precisions it multiplies.
  const Kernels& kernels() const { return *kernels_; }

  // The linear module `name`: `name.weight` as [out, in] (a Conv1D stores
  // [in, out]: `conv1d`), and `name.bias` [out] when `bias`.
  absl::StatusOr<Linear> LoadLinear(const std::string& name, int64_t in_features,
                                    int64_t out_features, bool bias, bool conv1d = false);
  // An embedding table `name.weight` [rows, cols], kept as stored.
  absl::StatusOr<Linear> LoadEmbedding(const std::string& name, int64_t rows, int64_t cols);
  // A tensor kept in fp32 (norm weights and biases, position tables).
  absl::StatusOr<F32Weight> LoadF32(const std::string& tensor_name,
                                    const std::vector<int64_t>& shape);

  // The modules loaded until EndGroup are staged together (a decoder layer,
  // `name` its module path).
  Streamer::GroupId BeginGroup(const std::string& name);
  void EndGroup() { group_ = Streamer::kResident; }
  // Ends loading: the streamer over every group, its staging pool allocated.
  absl::StatusOr<std::unique_ptr<Streamer>> FinishStreamer();

  // What was loaded, module by module, in load order (kLoad).
  const std::vector<ModuleRecord>& records() const { return records_; }
  // The activations block weights served as stored multiply (default fp32).
  void set_activations(ActivationPrecision activations) { activations_ = activations; }
  // Called with each record as it is made (kLoad), for progress reports.
  void set_on_record(std::function<void(const ModuleRecord&)> on_record) {
    on_record_ = std::move(on_record);
  }
  // What each module weighs, in load order (kSize).
  const std::vector<ModuleSize>& sizes() const { return sizes_; }
  // Skip-list entries of the quantization config that matched no linear
  // module: worth a warning (transformers warns too), not an error.
  std::vector<std::string> UnusedSkipModules() const;

 private:
  // The precision the linear module `name`, placed as `placement`, is to take;
  // nullopt: as stored.
  std::optional<Precision> LinearPrecision(const std::string& name, const Placement& placement);
  // The weight of a linear or embedding in `precision`.
  absl::StatusOr<std::unique_ptr<WeightFormat>> LoadWeight(const std::string& tensor,
                                                           int64_t rows, int64_t cols,
                                                           bool conv1d,
                                                           std::optional<Precision> precision);
  // Whether a weight stored as `stored`, asked in `precision` (none: as
  // stored), is served in its stored blocks rather than converted.
  bool ServedAsStored(const TensorView& stored, std::optional<Precision> precision,
                      bool conv1d) const;
  QuantizeOptions Quantize() const;
  // kSize: records the weight `name.weight` [rows, cols] of a module of
  // `group`, as LoadPlaced would make it.
  absl::Status SizeWeight(const std::string& name, Streamer::GroupId group, int64_t rows,
                          int64_t cols, bool conv1d, bool linear);
  void Record(const std::string& module, const std::string& device, Precision precision,
              int64_t parameters, int64_t bytes);
  // Where the weight of `module` rests, and the map's precision for it.
  // Checks the group's modules agree and that disk has somewhere to go.
  absl::StatusOr<Placement> PlacementOf(const std::string& module, Streamer::GroupId group);
  // The weight `name.weight` [rows, cols] of a module, in its group (the open
  // one, else a group of its own), made in its precision (a linear module's,
  // else as stored) and placed.
  struct PlacedWeight {
    std::unique_ptr<WeightFormat> format;
    Streamer::GroupId group = Streamer::kResident;
    Location where;
  };
  absl::StatusOr<PlacedWeight> LoadPlaced(const std::string& name, int64_t rows, int64_t cols,
                                          bool conv1d, bool linear);
  // Places `w` (the weight of `module`, in `group`) at `where`.
  absl::Status Place(const std::string& module, Streamer::GroupId group, const Location& where,
                     WeightFormat* w);

  const WeightSource& src_;
  const QuantizationConfig& quantization_;
  const DeviceMap& device_map_;
  std::vector<std::string> skip_;
  std::vector<bool> skip_used_;
  std::vector<ModuleRecord> records_;
  std::function<void(const ModuleRecord&)> on_record_;
  ActivationPrecision activations_ = ActivationPrecision::kFp32;
  const Pass pass_;
  std::vector<ModuleSize> sizes_;

  OffloadOptions offload_;
  const Kernels* kernels_;
  std::unique_ptr<Streamer> streamer_;
  std::unique_ptr<OffloadFile> file_;  // opened by the first disk module
  Streamer::GroupId group_ = Streamer::kResident;  // the open group, if any
  std::vector<std::pair<std::string, Location>> group_location_;  // first module, where; by group
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_MODULE_LOADER_H_
