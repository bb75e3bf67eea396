// GPT2LMHeadModel.
#ifndef TIERSERVE_RUNTIME_MODEL_GPT2_H_
#define TIERSERVE_RUNTIME_MODEL_GPT2_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/causal_lm.h"
#include "runtime/model/module_loader.h"

namespace tierserve {

// `pool` must outlive the model.
absl::StatusOr<std::unique_ptr<CausalLM>> LoadGpt2(ModuleLoader& loader, ThreadPool* pool);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_GPT2_H_
