// Generates text for one sequence: prefill, then decode steps through the
// sampler, with streaming detokenization and stop conditions (EOS, stop
// strings, max_new_tokens, cancellation by the caller).
//
// Thread-safety: a Generator drives one model forward at a time; not
// thread-safe. (Batched serving of many sequences is the engine's job.)
#ifndef TIERSERVE_RUNTIME_GENERATE_GENERATOR_H_
#define TIERSERVE_RUNTIME_GENERATE_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/generate/sampler.h"
#include "runtime/model/causal_lm.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

enum class FinishReason { kLength, kStop, kEos, kCancelled };
const char* FinishReasonName(FinishReason r);

struct GenerationRequest {
  std::vector<int32_t> prompt;      // token ids, at least one
  int32_t max_new_tokens = 16;      // >= 1
  SamplingParams sampling;
  std::vector<std::string> stop;    // stop strings (not included in the output)
  bool ignore_eos = false;          // keep going past EOS (benchmarks, goldens)
};

// One piece of the stream: the text that became final with this step (may be
// empty while a UTF-8 character or a possible stop string is held back) and
// the token sampled.
struct GenerationDelta {
  std::string text;
  SampledToken token;
};

struct GenerationResult {
  std::string text;
  std::vector<SampledToken> tokens;
  FinishReason finish_reason = FinishReason::kLength;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;  // time to the first sampled token
  double decode_seconds = 0;   // time of the remaining steps

  std::vector<int32_t> TokenIds() const {
    std::vector<int32_t> ids;
    for (const SampledToken& t : tokens) ids.push_back(t.id);
    return ids;
  }
};

class Generator {
 public:
  // Neither pointer is owned; both must outlive the Generator. `kv_dtype`:
  // what the KV cache stores, kF32 or kF16.
  Generator(CausalLM* model, const Tokenizer* tokenizer, DType kv_dtype = DType::kF32)
      : model_(model), tokenizer_(tokenizer), kv_dtype_(kv_dtype) {}

  // Runs `request` to completion. `on_delta` (optional) sees every step; when
  // it returns false generation stops with FinishReason::kCancelled.
  absl::StatusOr<GenerationResult> Generate(
      const GenerationRequest& request,
      const std::function<bool(const GenerationDelta&)>& on_delta = nullptr);

 private:
  CausalLM* model_;
  const Tokenizer* tokenizer_;
  DType kv_dtype_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_GENERATOR_H_
