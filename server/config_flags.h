// Flags of the commands that read a config file (`serve`, `plan`).
#ifndef TIERSERVE_SERVER_CONFIG_FLAGS_H_
#define TIERSERVE_SERVER_CONFIG_FLAGS_H_

#include <optional>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "server/config.h"

ABSL_DECLARE_FLAG(std::string, config);
ABSL_DECLARE_FLAG(std::optional<std::string>, accelerator);

namespace tierserve {

// The config of --config (none: flags only) with `overrides` applied, and
// --model and --accelerator added to them (ApplyFlagOverrides).
absl::StatusOr<ServerConfig> ConfigFromFlags(FlagOverrides overrides);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_CONFIG_FLAGS_H_
