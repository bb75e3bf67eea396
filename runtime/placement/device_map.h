// A model's device map: where each module's weights rest (a placement) and,
// optionally, in which precision, keyed by module-path prefix as HF
// accelerate writes it:
//
//   device_map:
//     "": cpu                          # the empty prefix places everything
//     model.embed_tokens: cuda:0
//     model.layers.0-14: 0             # a layer range; 0 is cuda:0
//     model.layers.15-29: {device: cpu, precision: int8}
//     lm_head: disk
//
// or `device_map: auto` (or `balanced`, `sequential`: recorded here; the
// planner in plan.h computes the placements).
//
// A key is a dot-separated module path (letters, digits, `_`); one of its
// parts may be a range `lo-hi`, shorthand for the hi-lo+1 paths with each
// number. A tensor takes the placement of the longest key that is a prefix of
// its name at a `.` boundary: `model.layers.1` places `model.layers.1.mlp.x`
// but not `model.layers.10.mlp.x`. Each path may be placed once.
//
// Thread-safety: immutable after construction; safe to share.
#ifndef TIERSERVE_RUNTIME_PLACEMENT_DEVICE_MAP_H_
#define TIERSERVE_RUNTIME_PLACEMENT_DEVICE_MAP_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/placement/precision.h"

namespace tierserve {

// Where a placement puts a module: a memory tier and, for cuda, the device
// index.
struct Location {
  enum class Tier { kCuda, kSim, kCpu, kDisk };
  Tier tier = Tier::kCpu;
  int index = 0;  // cuda and sim only

  // "cuda:N", "sim:N", "cpu" or "disk".
  std::string ToString() const;
  bool operator==(const Location&) const = default;
};
// Parses `cuda:N`, a bare GPU index `N` (as accelerate writes it), `sim:N`
// (a simulated accelerator), `cpu` or `disk`; std::nullopt otherwise. N is
// 0..255.
std::optional<Location> ParseLocation(absl::string_view text);
inline constexpr char kDeviceForms[] = "cuda:N, a GPU index N, sim:N, cpu or disk";

// Where one module's weights rest, and in which precision (none: as the
// model file and the quantization section make them).
struct Placement {
  Location device;
  std::optional<Precision> precision;

  // "cuda:0", or "cuda:0 (int8)" with a precision.
  std::string ToString() const;
  bool operator==(const Placement&) const = default;
};

// How `device_map: auto` fills devices (see PlanPlacement in plan.h).
enum class PlanStrategy { kAuto, kBalanced, kSequential };
// "auto", "balanced", "sequential"; std::nullopt otherwise.
std::optional<PlanStrategy> ParsePlanStrategy(absl::string_view text);
const char* PlanStrategyName(PlanStrategy strategy);
inline constexpr char kPlanStrategyForms[] = "auto, balanced or sequential";

class DeviceMap {
 public:
  // One module-path prefix; a range key expands to several entries.
  struct Entry {
    std::string prefix;  // "" places everything
    Placement placement;
    std::string key;  // the key as written, e.g. "model.layers.0-14"
  };

  // An empty map: places nothing.
  DeviceMap() = default;
  // An empty map that came from `key_path` of the config file `source`;
  // AddKey fills it.
  DeviceMap(std::string source, std::string key_path)
      : source_(std::move(source)), key_path_(std::move(key_path)) {}
  // A map that places everything (the "" prefix) on `placement`.
  static DeviceMap Everything(Placement placement, std::string source, std::string key_path);
  // `device_map: auto` (balanced, sequential).
  static DeviceMap Auto(std::string source, std::string key_path,
                        PlanStrategy strategy = PlanStrategy::kAuto);

  // Adds `key` (a prefix or a range) with `placement`; the error says what is
  // wrong with the key, without file or key path.
  absl::Status AddKey(const std::string& key, const Placement& placement);

  // The same map with every placement on tier `from` moved to tier `to`,
  // index kept (cuda:1 -> sim:1).
  DeviceMap WithTier(Location::Tier from, Location::Tier to) const;

  bool is_auto() const { return auto_; }
  PlanStrategy strategy() const { return strategy_; }  // when is_auto()
  // In file order, ranges expanded. Empty when is_auto().
  const std::vector<Entry>& entries() const { return entries_; }
  // The config file and key path the map came from, for messages.
  const std::string& source() const { return source_; }
  const std::string& key_path() const { return key_path_; }

  // The placement of `tensor_name` (an HF name such as
  // `model.layers.3.mlp.up_proj.weight`): that of the longest matching prefix.
  // NotFound when no key matches; FailedPrecondition for an auto map.
  absl::StatusOr<Placement> Resolve(std::string_view tensor_name) const;

  // Checks every tensor of `tensor_names` has a placement; the error names the
  // first one without, the key path and how to fix it. `source` starts the
  // message (the config file). An auto map covers everything.
  absl::Status CheckCovers(const std::vector<std::string>& tensor_names,
                           const std::string& source) const;
  // Checks every prefix places at least one of `tensor_names`: a key that
  // matches nothing is a typo or a range past the model's last layer.
  absl::Status CheckEveryKeyUsed(const std::vector<std::string>& tensor_names,
                                 const std::string& source) const;

 private:
  // The entry of the longest prefix of `name`, or nullptr.
  const Entry* Match(std::string_view name) const;

  bool auto_ = false;
  PlanStrategy strategy_ = PlanStrategy::kAuto;
  std::string source_;
  std::string key_path_;
  std::vector<Entry> entries_;
  absl::flat_hash_map<std::string, size_t> by_prefix_;  // prefix -> index in entries_
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_PLACEMENT_DEVICE_MAP_H_
