// Pieces of the forward pass shared by the architectures: how a batch of
// sequences is flattened into rows, rotary tables, and causal attention over
// each sequence's KV cache.
#ifndef TIERSERVE_RUNTIME_MODEL_ATTENTION_H_
#define TIERSERVE_RUNTIME_MODEL_ATTENTION_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "runtime/base/thread_pool.h"
#include "runtime/device/kernels.h"
#include "runtime/model/causal_lm.h"

namespace tierserve {

// The batch flattened to T rows: row t is token tokens[t] of sequence seq[t]
// at position pos[t]. logit_rows lists the rows whose logits are wanted, in
// output order.
struct BatchRows {
  std::vector<int32_t> tokens;
  std::vector<int32_t> seq;
  std::vector<int64_t> pos;
  std::vector<int64_t> logit_rows;

  // Flattens `batch`, checking every precondition of CausalLM::Forward.
  absl::Status Build(absl::Span<const SequenceInput> batch, const ModelConfig& config);
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
};

// fn(t0, t1) over the rows [0, T): inline for one row (one sequence's
// decode: less work than a hand-out to the threads), shared among the pool's
// threads otherwise. For row-wise ops, whose bits do not depend on how the
// rows are cut.
void ForRows(ThreadPool* pool, int64_t T, const std::function<void(int64_t, int64_t)>& fn);

// Rotary frequencies for the rotate-half convention, as HF computes them in
// fp32 (with llama3 or linear scaling when configured).
std::vector<float> RopeInverseFrequencies(const ModelConfig& config);

// Fills cos_sin[0..d/2) with cos(pos*f) and [d/2..d) with sin(pos*f).
void RopeCosSin(const std::vector<float>& inv_freq, int64_t pos, float* cos_sin);

// How CausalAttention shares its work among threads. The results are the
// same bits whichever is used (kernels/common/attention.h); kAuto picks by
// the amount of work.
enum class AttentionSchedule {
  kAuto,
  kByRow,   // an item per row: prefill, large batches
  kBySpan,  // an item per (row, span), then a merge: decode of long rows
};

// For every row t and head h: softmax(q_t,h . K[0..pos_t]^T * scale) V[0..pos_t],
// reading keys/values of `layer` from the row's sequence cache. Query head h
// reads kv head h / (num_heads / num_kv_heads); the heads of one KV head are
// computed together, sharing its reads.
// q and out are [T, num_heads * head_dim]. The caches must already hold the
// row's own key and value.
// `k` is the execution device's kernel table.
void CausalAttention(const Kernels& k, const BatchRows& rows, absl::Span<const SequenceInput> batch,
                     int64_t layer, const float* q, int64_t num_heads, int64_t num_kv_heads,
                     int64_t head_dim, float* out, ThreadPool* pool,
                     AttentionSchedule schedule = AttentionSchedule::kAuto);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_ATTENTION_H_
