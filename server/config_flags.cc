#include "server/config_flags.h"

#include "absl/flags/flag.h"
#include "runtime/base/status_macros.h"
#include "server/common_flags.h"

ABSL_FLAG(std::string, config, "", "YAML config file (see deploy/tierserve.yaml).");
ABSL_FLAG(std::optional<std::string>, accelerator, std::nullopt,
          "cuda or sim: with sim, cuda:N and bare GPU indices in every model's device map (and "
          "max_memory) mean simulated accelerators sim:N (overrides each model's accelerator).");

namespace tierserve {

absl::StatusOr<ServerConfig> ConfigFromFlags(FlagOverrides overrides) {
  ServerConfig config;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    TS_ASSIGN_OR_RETURN(config, LoadServerConfig(absl::GetFlag(FLAGS_config)));
  }
  if (!absl::GetFlag(FLAGS_model).empty()) overrides.model = absl::GetFlag(FLAGS_model);
  overrides.accelerator = absl::GetFlag(FLAGS_accelerator);
  TS_RETURN_IF_ERROR(ApplyFlagOverrides(&config, overrides));
  return config;
}

}  // namespace tierserve
