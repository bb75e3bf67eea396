// Loads a model of any supported architecture from a GGUF file or HF folder.
#ifndef TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_
#define TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/causal_lm.h"
#include "runtime/model/weight_source.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

// A loaded model with what it needs to serve text: its weights' source (kept
// open: fp32 weights may be views into its mapped files) and its tokenizer.
struct LoadedModel {
  std::unique_ptr<WeightSource> source;
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model ships none
};

// `pool` must outlive the result.
absl::StatusOr<LoadedModel> LoadModel(const std::string& path, ThreadPool* pool);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_MODEL_LOADER_H_
