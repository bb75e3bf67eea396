#include "server/common_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, model, "",
          "Model to load: a .gguf file or a Hugging Face model folder (serve: served under its "
          "file name when the config names no model).");
ABSL_FLAG(int32_t, threads, -1,
          "Compute threads; 0 = one per core. Unset (-1): one per core for generate, "
          "server.threads of the config for serve.");
