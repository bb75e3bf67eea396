#include "runtime/model/model_loader.h"

#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/format/gguf.h"
#include "runtime/model/gpt2.h"
#include "runtime/model/llama.h"
#include "runtime/model/module_loader.h"

namespace tierserve {

Location ExecutionLocation(const DeviceMap& map) {
  if (!map.is_auto()) {
    for (const DeviceMap::Entry& e : map.entries()) {
      if (e.placement.device.tier == Location::Tier::kSim) return e.placement.device;
    }
  }
  return Location{Location::Tier::kCpu, 0};
}

namespace {

// Builds the model of `loader`'s source through `loader`.
absl::StatusOr<std::unique_ptr<CausalLM>> Build(ModuleLoader& loader, ThreadPool* pool) {
  switch (loader.source().config().arch) {
    case Architecture::kLlama:
      return LoadLlama(loader, pool);
    case Architecture::kGpt2:
      return LoadGpt2(loader, pool);
  }
  return absl::InternalError("unknown architecture");
}

}  // namespace

absl::StatusOr<std::vector<ModuleSize>> SizeModel(const WeightSource& source,
                                                  const QuantizationConfig& quantization,
                                                  const DeviceMap& device_map,
                                                  const Location& execution) {
  DeviceSet devices;  // holds nothing: a sizing pass allocates no weights
  ModuleLoader loader(source, quantization, device_map,
                      OffloadOptions{&devices, execution, "", 0}, ModuleLoader::Pass::kSize);
  ThreadPool pool(1);
  TS_RETURN_IF_ERROR(Build(loader, &pool).status());
  return loader.sizes();
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& path, const ModelLoadOptions& options) {
  if (options.pool == nullptr) return absl::InvalidArgumentError("LoadModel needs a compute pool");
  LoadedModel m;
  TS_ASSIGN_OR_RETURN(m.source, WeightSource::Open(path));
  static DeviceSet* const default_devices = new DeviceSet();
  const Location execution = ExecutionLocation(options.device_map);
  ModuleLoader loader(*m.source, options.quantization, options.device_map,
                      OffloadOptions{options.devices != nullptr ? options.devices : default_devices,
                                     execution, options.offload_path,
                                     options.prefetch_depth});
  loader.set_activations(options.activations);
  LoadProgress progress;  // outlives the loader's calls of on_record below
  if (options.on_progress) {
    for (const std::string& name : m.source->store().Names()) {
      progress.parameters_total += m.source->store().Find(name)->NumElements();
    }
    loader.set_on_record([&progress, &options](const ModuleRecord& r) {
      progress.module = &r;
      progress.parameters_done = std::min(progress.parameters_done + r.parameters, progress.parameters_total);
      options.on_progress(progress);
    });
  }
  TS_ASSIGN_OR_RETURN(m.model, Build(loader, options.pool));
  m.modules = loader.records();
  m.execution_device = execution.ToString();
  for (const std::string& skip : loader.UnusedSkipModules()) {
    m.warnings.push_back(absl::StrCat("llm_int8_skip_modules: ", skip,
                                      " matches no linear module of ", path,
                                      "; nothing was kept unquantized for it"));
  }
  if (m.source->gguf() != nullptr) {
    TS_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromGguf(*m.source->gguf()));
  } else {
    const std::string tj = path + "/tokenizer.json";
    struct stat st;
    if (stat(tj.c_str(), &st) == 0) {
      TS_ASSIGN_OR_RETURN(m.tokenizer, Tokenizer::FromTokenizerJson(tj));
    }
  }
  return m;
}

}  // namespace tierserve
