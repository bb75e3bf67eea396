#include "server/common_flags.h"

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

ABSL_FLAG(std::string, model, "",
          "Model to load: a .gguf file or a Hugging Face model folder (serve: served under its "
          "file name when the config names no model).");
ABSL_FLAG(int32_t, threads, -1,
          "Compute threads; 0 = one per core. Unset (-1): one per core for generate, "
          "server.threads of the config for serve.");

namespace tierserve {

void ParseCommandFlags(const std::string& command, const char* usage,
                       const std::vector<std::string>& args, bool reads_config) {
  std::string prog = "tierserve " + command;
  std::vector<std::string> copy = args;
  std::vector<char*> argv = {prog.data()};
  for (std::string& a : copy) argv.push_back(a.data());
  absl::FlagsUsageConfig config;
  const std::string file = command + "_command";
  config.contains_help_flags = [file, reads_config](absl::string_view f) {
    return absl::StrContains(f, file) || absl::StrContains(f, "common_flags") ||
           (reads_config && absl::StrContains(f, "config_flags"));
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

}  // namespace tierserve
