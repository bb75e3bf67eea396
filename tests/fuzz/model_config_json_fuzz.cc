// Fuzzes the reader of a HF model config.json (runtime/model/model_config.cc)
// through ParseHfConfig. An accepted config must pass its own Validate, whose
// bounds every later allocation relies on.
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "runtime/model/model_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  absl::StatusOr<ModelConfig> c = ParseHfConfig(fuzz::AsText(data, size), "config.json");
  fuzz::Report("ParseHfConfig", c.status());
  if (!c.ok()) return 0;
  if (!c->Validate("config.json").ok()) fuzz::InvariantFailed("an accepted config fails Validate");
  return 0;
}
