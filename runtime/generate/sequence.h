// One request's generation state: its tokens (prompt, then generated), how
// many of them the KV cache holds, its block table, sampler, stop matcher
// and streaming detokenizer. Whoever runs the model (the Generator for one
// sequence, the Engine for a batch) feeds it the logits of its last token;
// Step samples, streams and decides whether it is finished.
//
// Lives beside the sampler and stop matcher rather than in runtime/engine:
// the single-sequence Generator runs the same state, and the engine builds on
// it (engine -> generate, never back).
//
// Thread-safety: not thread-safe; one thread drives a sequence at a time.
#ifndef TIERSERVE_RUNTIME_GENERATE_SEQUENCE_H_
#define TIERSERVE_RUNTIME_GENERATE_SEQUENCE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/generate/generator.h"
#include "runtime/generate/stop_matcher.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

class Sequence {
 public:
  // Checks the request against the model (prompt non-empty, max_new_tokens
  // >= 1, prompt + max_new_tokens within the context, sampling parameters
  // and stop strings valid). Neither pointer is owned; both outlive it.
  static absl::StatusOr<std::unique_ptr<Sequence>> Create(GenerationRequest request,
                                                          const CausalLM& model,
                                                          const Tokenizer* tokenizer,
                                                          KvBlockPool* pool);

  const GenerationRequest& request() const { return request_; }
  // Prompt, then the tokens generated so far.
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  // The longest this sequence can grow: prompt + max_new_tokens.
  int64_t max_tokens() const {
    return static_cast<int64_t>(request_.prompt.size()) + request_.max_new_tokens;
  }
  // Tokens whose keys and values the cache holds.
  int64_t num_computed() const { return num_computed_; }
  PagedKvCache& cache() { return cache_; }

  // Takes the cached blocks that hold a prefix of the first `limit` tokens
  // (at most up to the last token, whose logits are still needed).
  // REQUIRES: num_computed() == 0. Returns the tokens matched (a multiple of
  // the block size).
  int64_t MatchPrefix(int64_t limit);
  // Reserves blocks for `n` more tokens. False when the pool ran out.
  bool Reserve(int64_t n) { return cache_.Reserve(num_computed_ + n); }
  // Records that a forward computed the next `n` tokens, and publishes the
  // blocks that filled up to the prefix cache.
  void Advance(int64_t n);
  // Frees every block; the tokens stay, to be computed again (preemption).
  void ReleaseCache();

  // Marks the start of work on this request (prefill timing starts here).
  void Start() { t_start_ = std::chrono::steady_clock::now(); }

  // Samples the next token from `logits` (the row of the last token, once
  // num_computed() == num_tokens()), detokenizes and matches stop strings.
  // Returns the text that became final; finished() tells whether that was
  // the last step.
  GenerationDelta Step(absl::Span<const float> logits);
  // Seconds between the last two tokens Step produced (0 after the first).
  double last_token_gap() const { return last_gap_; }
  // Ends the sequence as cancelled (the caller stopped listening).
  void Cancel();
  bool finished() const { return finished_; }
  // The result so far; complete once finished().
  GenerationResult& result() { return result_; }

 private:
  Sequence(GenerationRequest request, const Tokenizer* tokenizer, Sampler sampler, StopMatcher stop,
           std::vector<int32_t> eos, KvBlockPool* pool, int64_t kv_dim);
  void Finish(FinishReason reason);
  // Block i of the prefix-cache hash chain: its tokens, and the hash of the
  // blocks before it (0 for the first). REQUIRES: hashes_ holds i entries.
  absl::Span<const int32_t> BlockTokens(int64_t i) const {
    const int64_t bt = cache_.block_tokens();
    return absl::Span<const int32_t>(tokens_).subspan(i * bt, bt);
  }
  uint64_t ParentHash(int64_t i) const { return i == 0 ? 0 : hashes_[i - 1]; }

  GenerationRequest request_;
  const Tokenizer* tokenizer_;
  Sampler sampler_;
  StopMatcher stop_;
  StreamingDetokenizer detok_;
  std::vector<int32_t> eos_;
  std::vector<int32_t> tokens_;
  int64_t num_computed_ = 0;
  PagedKvCache cache_;
  // Hash chain of the blocks published so far (block i: hashes_[i]).
  std::vector<uint64_t> hashes_;
  bool finished_ = false;
  GenerationResult result_;
  std::chrono::steady_clock::time_point t_start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point t_first_;
  std::chrono::steady_clock::time_point t_last_;
  double last_gap_ = 0;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_SEQUENCE_H_
