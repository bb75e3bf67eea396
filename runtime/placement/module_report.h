// Where each module of a loaded model rests and in which precision, with its
// parameters and bytes: what ListModels, the metrics and the load summary
// report. Modules are grouped into device-map form: siblings sharing a
// placement and precision fold into their parent (`model.layers.3.mlp`), and
// consecutive layers that look alike fold into a range
// (`model.layers.0-29.mlp`).
#ifndef TIERSERVE_RUNTIME_PLACEMENT_MODULE_REPORT_H_
#define TIERSERVE_RUNTIME_PLACEMENT_MODULE_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/placement/precision.h"

namespace tierserve {

// One module (a weight and its bias, or a norm), in load order.
struct ModuleRecord {
  std::string module;  // HF module path: model.layers.3.mlp.up_proj
  std::string device;  // "cpu", "cuda:0", "disk"
  Precision precision = Precision::kFp32;
  int64_t parameters = 0;
  int64_t bytes = 0;
};

// Records folded into device-map keys, in first-appearance order.
std::vector<ModuleRecord> GroupModules(const std::vector<ModuleRecord>& records);

// Bytes per (device, precision), for the memory report.
struct MemoryLine {
  std::string device;
  Precision precision = Precision::kFp32;
  int64_t parameters = 0;
  int64_t bytes = 0;
};
std::vector<MemoryLine> MemoryByPrecision(const std::vector<ModuleRecord>& records);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_PLACEMENT_MODULE_REPORT_H_
