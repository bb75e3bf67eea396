// Fuzzes the daemon's YAML config (server/config.cc, config_node.cc,
// device_map_config.cc): ParseServerConfig, ApplyFlagOverrides with no
// flags, each model's device map resolved for a few module paths, and the
// same text as a `quantization` section alone (ParseQuantizationConfig).
//
// A model's `path` must exist before the rest of its entry is read, so the
// harness makes a folder at start-up holding `tiny.gguf` and `hf/config.json`
// (empty: the config reader only checks they exist) and replaces `$MODELS`
// in each input with that folder. The seeds name models as `$MODELS/...`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_replace.h"
#include "server/config.h"
#include "tests/fuzz/fuzz_support.h"

namespace tierserve {
namespace {

std::string* models_dir = nullptr;

void RemoveModelsDir() {
  std::error_code ec;
  if (models_dir != nullptr) std::filesystem::remove_all(*models_dir, ec);
}

}  // namespace
}  // namespace tierserve

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace tierserve;
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                    "/yaml_config_fuzz.XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) fuzz::InvariantFailed("cannot make the models folder");
  models_dir = new std::string(dir);
  std::atexit(RemoveModelsDir);
  std::filesystem::create_directories(dir + "/hf");
  std::ofstream(dir + "/tiny.gguf").put('\0');
  std::ofstream(dir + "/hf/config.json") << "{}";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  std::string text(fuzz::AsText(data, size));
  absl::StrReplaceAll({{"$MODELS", *models_dir}}, &text);
  fuzz::Report("ParseQuantizationConfig", ParseQuantizationConfig(text, "fuzz.yaml").status());
  absl::StatusOr<ServerConfig> config = ParseServerConfig(text, "fuzz.yaml");
  fuzz::Report("ParseServerConfig", config.status());
  if (!config.ok()) return 0;
  const absl::Status flags = ApplyFlagOverrides(&*config, FlagOverrides());
  fuzz::Report("ApplyFlagOverrides", flags);
  if (!flags.ok()) return 0;
  for (const ModelServingConfig& m : config->models) {
    for (const char* module :
         {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
          "model.layers.17.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight",
          "transformer.h.3.attn.c_attn.weight", ""}) {
      (void)m.device_map.Resolve(module);
    }
  }
  return 0;
}
