// Flags shared by the `serve` and `generate` commands (absl flags are global,
// so a flag both commands take is defined once, here).
#ifndef TIERSERVE_SERVER_COMMON_FLAGS_H_
#define TIERSERVE_SERVER_COMMON_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(int32_t, threads);

#endif  // TIERSERVE_SERVER_COMMON_FLAGS_H_
