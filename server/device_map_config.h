// Reads a model's `device_map` from its config file node into a DeviceMap
// (runtime/placement/device_map.h documents the forms).
#ifndef TIERSERVE_SERVER_DEVICE_MAP_CONFIG_H_
#define TIERSERVE_SERVER_DEVICE_MAP_CONFIG_H_

#include "absl/status/statusor.h"
#include "runtime/placement/device_map.h"
#include "server/config_node.h"

namespace tierserve {

// `auto` or a map of prefix -> placement. Errors are one line naming the file
// and the key path.
absl::StatusOr<DeviceMap> ReadDeviceMap(const ConfigNode& node);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_DEVICE_MAP_CONFIG_H_
