// Turns one row of logits into the next token of one sequence.
//
// The pipeline follows Hugging Face transformers' `generate()` (and vLLM,
// which matches it for these knobs):
//
//   1. repetition penalty (CTRL-style, as HF's RepetitionPenaltyLogitsProcessor):
//      for every distinct token id already in the sequence, a logit x < 0
//      becomes x * penalty and a logit x >= 0 becomes x / penalty;
//   2. temperature: x / T (T = 0 selects greedy decoding, see below);
//   3. top_k: drop every token whose logit is below the k-th largest logit
//      (tokens tied with the k-th largest are kept, as HF and vLLM do);
//   4. top_p: keep the smallest set of most probable tokens (equal
//      probabilities ranked by lowest id) whose probability mass, in the
//      distribution left by top_k, reaches top_p;
//   5. min_p: drop every token whose probability is below min_p times the
//      probability of the most likely token;
//   6. draw from the softmax of what is left.
//
// min_p comes after top_p as in HF. vLLM v1 applies min_p before top_k/top_p,
// so there top_p measures mass after min_p's cut; with both set, vLLM may keep
// fewer tokens than HF and this sampler do.
//
// Temperature 0 is greedy decoding: the argmax of the penalized logits (ties
// go to the lowest id) with no random draw, so top_k/top_p/min_p, which never
// remove the most likely token, play no part.
//
// Reported log-probabilities are those of the *raw* model output: the
// log-softmax of the unmodified logits, before the repetition penalty,
// temperature and truncation. This is vLLM's default (`logprobs_mode =
// raw_logprobs`): a token's logprob then describes the model, not the knobs of
// the request, and is comparable across requests. It also means a token sampled
// at a high temperature may carry a low logprob.
//
// Non-finite logits: NaN is treated as -inf (never sampled) and +inf as the
// largest finite float. If every logit is -inf or NaN the sampler returns
// token 0 with logprob -inf and no alternatives.
#ifndef TIERSERVE_RUNTIME_GENERATE_SAMPLER_H_
#define TIERSERVE_RUNTIME_GENERATE_SAMPLER_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tierserve {

// The knobs of one request, with the OpenAI / vLLM meanings and defaults.
struct SamplingParams {
  float temperature = 1.0f;         // >= 0 and finite; 0 = greedy
  int top_k = 0;                    // >= 0; 0 = off
  float top_p = 1.0f;               // in (0, 1]; 1 = off
  float min_p = 0.0f;               // in [0, 1]; 0 = off
  float repetition_penalty = 1.0f;  // > 0 and finite; 1 = off
  uint64_t seed = 0;                // seeds the sequence's generator
  int logprobs = 0;                 // alternatives to report per token, 0..20
};

inline constexpr int kMaxLogprobs = 20;

// Checks every field against the ranges above; the message names the field,
// the value given and the range allowed.
absl::Status ValidateSamplingParams(const SamplingParams& params);

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;  // raw log-softmax of the model's logits
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;  // raw log-softmax of the model's logits, see above
  // The `params.logprobs` most likely tokens of the raw distribution, most
  // likely first (ties: lowest id first). The sampled token may or may not be
  // among them, as in the OpenAI API. Empty when logprobs = 0.
  std::vector<TokenLogprob> top_logprobs;
};

// One per sequence. Owns its random generator (std::mt19937_64 seeded with
// `params.seed`) and its scratch buffers (4 to 16 bytes per vocabulary entry),
// which are reused from token to token so that steady-state sampling does not
// allocate (except for top_logprobs).
// Uniform draws are made from the generator's raw 64-bit output with a fixed
// conversion (std::uniform_real_distribution's is up to the library), and the
// exponential is computed here rather than by the C library, so a seed gives
// the same tokens with every standard library.
//
// Thread-safety: not thread-safe; a sequence samples from one thread at a time.
// Different Sampler objects are independent.
class Sampler {
 public:
  // Fails with INVALID_ARGUMENT when ValidateSamplingParams() does.
  static absl::StatusOr<Sampler> Create(const SamplingParams& params);

  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;

  // Picks the next token from `logits` (one score per vocabulary id).
  // `previous_tokens` are the ids already in the sequence (prompt and
  // generated, as HF and vLLM penalize both); ids outside [0, vocab) are
  // ignored. REQUIRES: !logits.empty() (an empty span yields id -1).
  SampledToken Sample(absl::Span<const float> logits, absl::Span<const int32_t> previous_tokens);

  const SamplingParams& params() const { return params_; }

 private:
  explicit Sampler(const SamplingParams& params);

  // Applies the penalty to work_ (the sanitized logits).
  void ApplyRepetitionPenalty(absl::Span<const int32_t> previous_tokens);
  // Steps 3-6 on work_ (the penalized logits, largest `max_logit`);
  // `inv_temperature` is finite and > 0. When `weights_total` is set, work_
  // already holds the weights of step 6 for every id and this is their sum.
  int32_t SampleFromPenalized(float max_logit, float inv_temperature,
                              const double* weights_total);
  // Fills cand_, in ascending id order, with the ids whose penalized logit is
  // >= the k-th largest one. REQUIRES: 0 < k < work_.size().
  void SelectTopK(int k);
  // Finds the last token of the top_p nucleus: ranking the candidates by
  // weight (work_) descending, then id ascending, the nucleus is the shortest
  // prefix whose weight reaches `target`; `total` is the weight of all
  // candidates. The candidates are cand_ when `have_cand`, else every id, and
  // then cand_ receives a superset of the nucleus in ascending id order.
  // Returns the last token's weight and id.
  void NucleusThreshold(bool have_cand, double total, double target, float* weight, int32_t* id);
  // Uniform double in [0, 1) from the top 53 bits of one generator output.
  double NextUniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  // Scratch, sized to the vocabulary on first use and reused.
  std::vector<float> work_;     // penalized logits, then sampling weights
  std::vector<int32_t> cand_;   // candidate ids, ascending
  std::vector<int32_t> order_;  // candidates being ranked for top_p
  std::vector<float> select_;   // logits being searched for the k-th largest
  std::vector<uint64_t> seen_;  // bit per id: already penalized this step
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_SAMPLER_H_
