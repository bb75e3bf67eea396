#include "server/device_map_config.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace tierserve {
namespace {

constexpr char kMapForms[] =
    "auto, balanced, sequential (planned from max_memory) or a map from module-path prefix to "
    "placement";

absl::StatusOr<Placement> ReadPlacement(const ConfigNode& node) {
  Placement p;
  if (node.yaml().IsScalar()) {
    std::optional<Location> d = ParseLocation(node.yaml().Scalar());
    if (!d.has_value()) {
      return node.Error(absl::StrCat(node.Describe(), " is not a placement; expected ",
                                     kDeviceForms, ", or a map {device: ..., precision: ...}"));
    }
    p.device = *d;
    return p;
  }
  TS_RETURN_IF_ERROR(node.CheckMap({"device", "precision"},
                                   "a placement (cuda:N, N, cpu, disk) or a map "
                                   "{device: ..., precision: ...}"));
  std::optional<ConfigNode> device = node.Get("device");
  if (!device.has_value()) {
    return node.Error(absl::StrCat("no device; expected a map {device: <", kDeviceForms,
                                   ">, precision: <optional>}"));
  }
  std::optional<Location> d;
  if (device->yaml().IsScalar()) d = ParseLocation(device->yaml().Scalar());
  if (!d.has_value()) {
    return device->Error(
        absl::StrCat(device->Describe(), " is not a device; expected ", kDeviceForms));
  }
  p.device = *d;
  if (std::optional<ConfigNode> precision = node.Get("precision")) {
    std::optional<Precision> pr;
    if (precision->yaml().IsScalar()) pr = ParsePrecision(precision->yaml().Scalar());
    if (!pr.has_value()) {
      return precision->Error(
          absl::StrCat(precision->Describe(), " is not one of ", PrecisionNames()));
    }
    p.precision = *pr;
  }
  return p;
}

}  // namespace

absl::StatusOr<DeviceMap> ReadDeviceMap(const ConfigNode& node) {
  if (node.yaml().IsScalar()) {
    if (std::optional<PlanStrategy> s = ParsePlanStrategy(node.yaml().Scalar())) {
      return DeviceMap::Auto(node.source(), node.key_path(), *s);
    }
  }
  if (!node.IsMap()) {
    return node.Error(absl::StrCat(node.Describe(), " is not a device map; expected ", kMapForms));
  }
  if (node.yaml().size() == 0) {
    return node.Error(absl::StrCat("an empty map places nothing; expected ", kMapForms));
  }
  DeviceMap m(node.source(), node.key_path());
  TS_RETURN_IF_ERROR(
      node.ForEachEntry(kMapForms, [&](const std::string& key, const ConfigNode& value) {
        TS_ASSIGN_OR_RETURN(const Placement placement, ReadPlacement(value));
        if (absl::Status s = m.AddKey(key, placement); !s.ok()) return value.Error(s.message());
        return absl::OkStatus();
      }));
  return m;
}

}  // namespace tierserve
