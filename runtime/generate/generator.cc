#include "runtime/generate/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/generate/stop_matcher.h"

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

namespace {
double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

absl::StatusOr<GenerationResult> Generator::Generate(
    const GenerationRequest& req, const std::function<bool(const GenerationDelta&)>& on_delta) {
  const ModelConfig& cfg = model_->config();
  if (req.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens; at least one is required");
  if (req.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens is ", req.max_new_tokens, "; it must be at least 1"));
  }
  const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens;
  if (total > cfg.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", req.prompt.size(), " tokens) + max_new_tokens (", req.max_new_tokens,
        ") = ", total, " exceeds the model's context of ", cfg.max_position_embeddings, " tokens"));
  }
  TS_ASSIGN_OR_RETURN(Sampler sampler, Sampler::Create(req.sampling));
  TS_ASSIGN_OR_RETURN(StopMatcher stop, StopMatcher::Create(req.stop));

  std::vector<int32_t> eos = cfg.eos_token_ids;
  if (tokenizer_ != nullptr && tokenizer_->eos_id()) eos.push_back(*tokenizer_->eos_id());

  std::unique_ptr<KvCache> cache = model_->NewCache(total);
  std::vector<int32_t> seq = req.prompt;
  std::vector<float> logits;
  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(req.prompt.size());
  StreamingDetokenizer detok(tokenizer_);

  const auto t0 = std::chrono::steady_clock::now();
  SequenceInput in;
  in.tokens = req.prompt;
  in.start_pos = 0;
  in.cache = cache.get();
  TS_RETURN_IF_ERROR(model_->Forward({&in, 1}, &logits));

  auto emit = [&](std::string text, const SampledToken& tok) -> bool {
    result.text += text;
    if (!on_delta) return true;
    GenerationDelta d{std::move(text), tok};
    return on_delta(d);
  };

  auto t_decode = std::chrono::steady_clock::now();
  for (int32_t step = 0;; ++step) {
    SampledToken tok = sampler.Sample(logits, seq);
    if (step == 0) {
      result.prefill_seconds = SecondsSince(t0);
      t_decode = std::chrono::steady_clock::now();
    }
    seq.push_back(tok.id);
    result.tokens.push_back(tok);
    const bool is_eos = !req.ignore_eos && std::find(eos.begin(), eos.end(), tok.id) != eos.end();
    const bool is_last = step + 1 >= req.max_new_tokens;
    std::string piece = tokenizer_ ? detok.Push(tok.id) : std::string();
    if (tokenizer_ && (is_eos || is_last)) piece += detok.Finish();
    StopMatcher::Result r = stop.Push(piece);
    if (r.stopped) {
      emit(std::move(r.text), tok);
      result.finish_reason = FinishReason::kStop;
      break;
    }
    if (is_eos || is_last) {
      r.text += stop.Flush();
      emit(std::move(r.text), tok);
      result.finish_reason = is_eos ? FinishReason::kEos : FinishReason::kLength;
      break;
    }
    if (!emit(std::move(r.text), tok)) {
      result.finish_reason = FinishReason::kCancelled;
      break;
    }
    in.tokens = absl::Span<const int32_t>(&seq.back(), 1);
    in.start_pos = static_cast<int64_t>(seq.size()) - 1;
    TS_RETURN_IF_ERROR(model_->Forward({&in, 1}, &logits));
  }
  result.decode_seconds = SecondsSince(t_decode);
  return result;
}

}  // namespace tierserve
