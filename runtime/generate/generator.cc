#include "runtime/generate/generator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/generate/sequence.h"

namespace tierserve {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

absl::StatusOr<GenerationResult> Generator::Generate(
    const GenerationRequest& req, const std::function<bool(const GenerationDelta&)>& on_delta) {
  // A private pool just large enough for this request (Sequence::Create
  // refuses requests past the context, so that bounds its size).
  const ModelConfig& cfg = model_->config();
  const int64_t tokens = std::clamp<int64_t>(static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens, 1,
                                             cfg.max_position_embeddings);
  KvBlockPool::Options po;
  po.num_layers = cfg.num_layers;
  po.kv_dim = model_->KvDim();
  po.num_blocks = (tokens + po.block_tokens - 1) / po.block_tokens;
  po.dtype = kv_dtype_;
  KvBlockPool pool(po);
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Sequence> seq, Sequence::Create(req, *model_, tokenizer_, &pool));
  seq->Start();
  std::vector<float> logits;
  while (!seq->finished()) {
    const int64_t n = seq->num_tokens() - seq->num_computed();
    if (!seq->Reserve(n)) return absl::InternalError("the sequence outgrew its KV cache");
    SequenceInput in;
    in.tokens = absl::Span<const int32_t>(seq->tokens()).subspan(seq->num_computed(), n);
    in.start_pos = seq->num_computed();
    in.cache = &seq->cache();
    TS_RETURN_IF_ERROR(model_->Forward({&in, 1}, &logits));
    seq->Advance(n);
    GenerationDelta delta = seq->Step(logits);
    if (on_delta && !on_delta(delta)) seq->Cancel();
  }
  return std::move(seq->result());
}

}  // namespace tierserve
