#include "runtime/generate/sequence.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace tierserve {
namespace {
double SecondsBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

absl::StatusOr<std::unique_ptr<Sequence>> Sequence::Create(GenerationRequest request, const CausalLM& model,
                                                           const Tokenizer* tokenizer, KvBlockPool* pool) {
  const ModelConfig& cfg = model.config();
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens; at least one is required");
  if (request.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens is ", request.max_new_tokens, "; it must be at least 1"));
  }
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.max_new_tokens;
  if (total > cfg.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", request.prompt.size(), " tokens) + max_new_tokens (", request.max_new_tokens, ") = ", total,
        " exceeds the model's context of ", cfg.max_position_embeddings, " tokens"));
  }
  TS_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(request.sampling));
  TS_ASSIGN_OR_RETURN(StopMatcher stop, StopMatcher::Create(request.stop));
  std::vector<int32_t> eos = cfg.eos_token_ids;
  if (tokenizer != nullptr && tokenizer->eos_id()) eos.push_back(*tokenizer->eos_id());
  return std::unique_ptr<Sequence>(new Sequence(std::move(request), tokenizer, std::move(sampler),
                                                std::move(stop), std::move(eos), pool, model.KvDim()));
}

Sequence::Sequence(GenerationRequest request, const Tokenizer* tokenizer, Sampler sampler, StopMatcher stop,
                   std::vector<int32_t> eos, KvBlockPool* pool, int64_t kv_dim)
    : request_(std::move(request)),
      tokenizer_(tokenizer),
      sampler_(std::move(sampler)),
      stop_(std::move(stop)),
      detok_(tokenizer),
      eos_(std::move(eos)),
      tokens_(request_.prompt),
      cache_(pool, kv_dim) {
  result_.prompt_tokens = static_cast<int64_t>(request_.prompt.size());
}

int64_t Sequence::MatchPrefix(int64_t limit) {
  KvBlockPool* pool = cache_.pool();
  const int64_t bt = pool->block_tokens();
  // The last token is always computed: its logits give the first sample.
  limit = std::min(limit, num_tokens() - 1);
  for (int64_t i = 0; (i + 1) * bt <= limit; ++i) {
    const int32_t b = pool->Lookup(ParentHash(i), BlockTokens(i));
    if (b == KvBlockPool::kNoBlock) break;
    cache_.Append(b);
    hashes_.push_back(KvBlockPool::HashBlock(ParentHash(i), BlockTokens(i)));
  }
  num_computed_ = static_cast<int64_t>(hashes_.size()) * bt;
  return num_computed_;
}

void Sequence::Advance(int64_t n) {
  num_computed_ += n;
  KvBlockPool* pool = cache_.pool();
  const int64_t bt = pool->block_tokens();
  for (int64_t i = static_cast<int64_t>(hashes_.size()); (i + 1) * bt <= num_computed_; ++i) {
    pool->Publish(cache_.blocks()[i], ParentHash(i), BlockTokens(i));
    hashes_.push_back(KvBlockPool::HashBlock(ParentHash(i), BlockTokens(i)));
  }
}

void Sequence::ReleaseCache() {
  cache_.Clear();
  hashes_.clear();
  num_computed_ = 0;
}

GenerationDelta Sequence::Step(absl::Span<const float> logits) {
  SampledToken tok = sampler_.Sample(logits, tokens_);
  const auto now = std::chrono::steady_clock::now();
  if (result_.tokens.empty()) {
    result_.prefill_seconds = SecondsBetween(t_start_, now);
    t_first_ = now;
  } else {
    last_gap_ = SecondsBetween(t_last_, now);
  }
  t_last_ = now;
  tokens_.push_back(tok.id);
  result_.tokens.push_back(tok);
  const bool is_eos = !request_.ignore_eos && std::find(eos_.begin(), eos_.end(), tok.id) != eos_.end();
  const bool is_last = static_cast<int64_t>(result_.tokens.size()) >= request_.max_new_tokens;
  std::string piece = tokenizer_ ? detok_.Push(tok.id) : std::string();
  if (tokenizer_ && (is_eos || is_last)) piece += detok_.Finish();
  StopMatcher::Result r = stop_.Push(piece);
  if (r.stopped) {
    Finish(FinishReason::kStop);
  } else if (is_eos || is_last) {
    r.text += stop_.Flush();
    Finish(is_eos ? FinishReason::kEos : FinishReason::kLength);
  }
  result_.text += r.text;
  return GenerationDelta{std::move(r.text), std::move(tok)};
}

void Sequence::Cancel() {
  if (!finished_) Finish(FinishReason::kCancelled);
}

void Sequence::Finish(FinishReason reason) {
  finished_ = true;
  result_.finish_reason = reason;
  if (!result_.tokens.empty()) result_.decode_seconds = SecondsBetween(t_first_, std::chrono::steady_clock::now());
}

}  // namespace tierserve
