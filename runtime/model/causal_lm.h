// The interface every architecture implements: a forward pass over a batch of
// sequences, each bringing new tokens and its own KV cache.
#ifndef TIERSERVE_RUNTIME_MODEL_CAUSAL_LM_H_
#define TIERSERVE_RUNTIME_MODEL_CAUSAL_LM_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/model_config.h"
#include "runtime/stream/streamer.h"

namespace tierserve {

// One sequence's share of a forward pass.
struct SequenceInput {
  absl::Span<const int32_t> tokens;  // new tokens, at positions start_pos, start_pos+1, ...
  int64_t start_pos = 0;             // tokens already in `cache`
  KvCache* cache = nullptr;          // receives the new keys/values
  bool all_logits = false;           // logits for every new token, not just the last
  bool skip_logits = false;          // no logits at all (a prefill chunk short of the end)
};

// Receives a model's intermediate activations as a forward pass computes
// them: a conformance and debugging aid, as llama.cpp's graph evaluation
// callback is (tests/conformance/compare_llama_cpp_layers.py compares the two).
class ActivationTap {
 public:
  virtual ~ActivationTap() = default;
  // `name` is the tensor's name in llama.cpp's graph where it has one
  // ("attn_norm", "Vcur", "ffn_out", ...); `layer` is -1 outside the layers.
  // `data` holds rows x cols floats, row-major (a row per token of the batch),
  // valid during the call only.
  virtual void Observe(std::string_view name, int64_t layer, const float* data, int64_t rows, int64_t cols) = 0;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;

  virtual const ModelConfig& config() const = 0;

  // Runs every sequence's new tokens through the model and appends their
  // keys/values to its cache. `logits` receives, sequence after sequence,
  // one row of vocab_size floats per requested position (the last token, or
  // all new tokens with all_logits, or none with skip_logits).
  // REQUIRES: start_pos + tokens.size() <= cache->capacity() and
  //           <= config().max_position_embeddings; token ids < vocab_size.
  // Not thread-safe: one forward at a time per model.
  virtual absl::Status Forward(absl::Span<const SequenceInput> batch, std::vector<float>* logits) = 0;

  // A cache of `capacity` positions for this model, holding elements of
  // `dtype` (kF32 or kF16).
  std::unique_ptr<KvCache> NewCache(int64_t capacity, DType dtype = DType::kF32) const {
    return std::make_unique<ContiguousKvCache>(config().num_layers, capacity, KvDim(), dtype);
  }
  // Floats in one key (or value) row of one layer: what a KvBlockPool for
  // this model holds per position and layer.
  virtual int64_t KvDim() const = 0;

  // Bytes of weights read by one forward step (each weight once).
  virtual int64_t WeightBytes() const = 0;

  // What stages the model's offloaded weights (every model has one; with
  // nothing offloaded it does nothing).
  virtual const Streamer& streamer() const = 0;

  // Later Forward calls hand their intermediate activations to `tap` (not
  // owned; nullptr stops them). Unimplemented for architectures without
  // taps.
  virtual absl::Status SetActivationTap(ActivationTap* tap) {
    (void)tap;
    return absl::UnimplementedError("this architecture has no activation taps");
  }
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_CAUSAL_LM_H_
