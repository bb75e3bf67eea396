// Fuzzes request validation (server/request_validation.cc): a
// tierserve.v1.GenerateRequest in protobuf text format, each of its prompts
// validated with its parameters by BuildGenerationRequest against a tiny
// ChatML tokenizer, under a long and a short max_sequence_length and with
// special tokens in chat contents parsed or not. This is everything the
// service does to a request before the engine (model lookup and batch size
// aside). An accepted request must hold what the engine takes as given.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "runtime/generate/generator.h"
#include "runtime/generate/sampler.h"
#include "runtime/generate/stop_matcher.h"
#include "server/request_validation.h"
#include "tests/fuzz/fuzz_support.h"
#include "tierserve/v1/generation.pb.h"

namespace tierserve {
namespace {

// Parse errors are expected on most inputs; the default collector would log each.
class SilentErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

void CheckAccepted(const Tokenizer& tok, const PromptLimits& limits, const GenerationRequest& r) {
  if (r.prompt.empty()) fuzz::InvariantFailed("an accepted request has an empty prompt");
  if (r.max_new_tokens < 1) fuzz::InvariantFailed("an accepted request has max_new_tokens < 1");
  if (static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens > limits.max_sequence_length) {
    fuzz::InvariantFailed("an accepted request exceeds max_sequence_length");
  }
  for (int32_t id : r.prompt) {
    if (id < 0 || id >= tok.vocab_size()) {
      fuzz::InvariantFailed("a prompt id is outside the vocabulary");
    }
  }
  if (!Sampler::Create(r.sampling).ok()) {
    fuzz::InvariantFailed("accepted sampling parameters fail Sampler::Create");
  }
  if (!StopMatcher::Create(r.stop).ok()) {
    fuzz::InvariantFailed("accepted stop strings fail StopMatcher::Create");
  }
}

}  // namespace
}  // namespace tierserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  static const Tokenizer* const tok = fuzz::ChatMLTokenizer(fuzz::kSmolLm2ChatTemplate).release();
  v1::GenerateRequest req;
  google::protobuf::TextFormat::Parser parser;
  SilentErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(fuzz::AsText(data, size)), &req)) {
    fuzz::Report("TextFormat::Parser", absl::InvalidArgumentError("not a GenerateRequest"));
    return 0;
  }
  for (const PromptLimits& limits : {PromptLimits{2048, false}, PromptLimits{160, true}}) {
    for (const v1::Prompt& prompt : req.prompts()) {
      absl::StatusOr<GenerationRequest> r =
          BuildGenerationRequest(*tok, limits, prompt, req.parameters());
      fuzz::Report("BuildGenerationRequest", r.status());
      if (r.ok()) CheckAccepted(*tok, limits, *r);
    }
  }
  return 0;
}
