// Flags shared by the `serve` and `generate` commands (absl flags are global,
// so a flag both commands take is defined once, here).
#ifndef TIERSERVE_SERVER_COMMON_FLAGS_H_
#define TIERSERVE_SERVER_COMMON_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(int32_t, threads);

namespace tierserve {

// Parses the arguments of `tierserve <command>` into the flags. --help lists
// the flags defined in <command>_command.cc and here, and with `reads_config`
// those of config_flags.h; `usage` heads it.
void ParseCommandFlags(const std::string& command, const char* usage,
                       const std::vector<std::string>& args, bool reads_config = false);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_COMMON_FLAGS_H_
