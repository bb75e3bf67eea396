// LlamaForCausalLM: Llama 2/3, SmolLM2, TinyLlama, Mistral (no sliding window).
#ifndef TIERSERVE_RUNTIME_MODEL_LLAMA_H_
#define TIERSERVE_RUNTIME_MODEL_LLAMA_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/causal_lm.h"
#include "runtime/model/module_loader.h"

namespace tierserve {

// `pool` must outlive the model.
absl::StatusOr<std::unique_ptr<CausalLM>> LoadLlama(ModuleLoader& loader, ThreadPool* pool);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_LLAMA_H_
