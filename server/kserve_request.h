// The KServe v2 / Triton inference protocol's requests read into what
// tierserve runs, and its responses' tensors written: the text_input BYTES
// tensor (raw_input_contents or contents.bytes_contents) into prompts, the
// request parameters into tierserve.v1 GenerationParameters, and the
// text_output tensor back. Every error is INVALID_ARGUMENT (NOT_FOUND for a
// model version) with a message naming the tensor, element or parameter and
// what is allowed. Untrusted lengths are checked against the bytes left
// before they are used.
//
// Thread-safety: free functions over their arguments.
#ifndef TIERSERVE_SERVER_KSERVE_REQUEST_H_
#define TIERSERVE_SERVER_KSERVE_REQUEST_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/grpc_service.pb.h"
#include "tierserve/v1/generation.pb.h"

namespace tierserve::kserve {

inline constexpr char kTextInput[] = "text_input";
inline constexpr char kTextOutput[] = "text_output";
inline constexpr char kBytes[] = "BYTES";
// The one version every model has.
inline constexpr char kModelVersion[] = "1";
// Response parameters.
inline constexpr char kFinalResponse[] = "triton_final_response";
inline constexpr char kFinishReason[] = "finish_reason";
inline constexpr char kPromptTokens[] = "prompt_tokens";
inline constexpr char kCompletionTokens[] = "completion_tokens";

// The elements of a BYTES tensor in its raw form: each a 4-byte
// little-endian length, then that many bytes. `elements` is how many the
// tensor's shape says; the bytes must hold exactly that many.
absl::StatusOr<std::vector<std::string>> DecodeBytesTensor(absl::string_view raw, int64_t elements,
                                                           absl::string_view tensor);
// The raw form of `elements`.
std::string EncodeBytesTensor(absl::Span<const std::string> elements);

// The prompts of a request's text_input.
struct TextInput {
  std::vector<std::string> prompts;  // at least one, each non-empty UTF-8
  std::vector<int64_t> shape;        // as sent: [N] or [N, 1]
  bool raw = false;                  // sent as raw_input_contents (answer with raw_output_contents)
};
// Reads text_input: the request's only input, BYTES, shape [N] or [N, 1]
// with 1 <= N <= max_prompts (`limit` says why, for the message), its
// elements in raw_input_contents or in contents.bytes_contents (not both);
// requested outputs, if any, name only text_output; no tensor parameters
// (shared memory, classification).
absl::StatusOr<TextInput> ReadTextInput(const inference::ModelInferRequest& request, int64_t max_prompts,
                                        absl::string_view limit);

// What the request parameters ask for.
struct InferOptions {
  v1::GenerationParameters generation;
  // triton_enable_empty_final_response: a stream's last response carries no
  // output (otherwise an empty text_output).
  bool empty_final_response = false;
};
// Reads the request parameters: max_tokens, temperature, top_k, top_p,
// min_p, repetition_penalty, seed, stop, ignore_eos, and
// triton_enable_empty_final_response (which only a stream's last response
// heeds). An unknown name or a wrong type is INVALID_ARGUMENT naming it and
// the allowed ones; the values' ranges are BuildGenerationRequest's to check.
absl::StatusOr<InferOptions> ReadParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters);

// OK for "" and "1" (the one version of every model); NOT_FOUND otherwise.
absl::Status CheckModelVersion(absl::string_view version, absl::string_view model);

// Adds the text_output tensor (BYTES, `shape`) holding `texts` to
// `response`: in raw_output_contents when `raw`, else in contents.
void AddTextOutput(absl::Span<const std::string> texts, absl::Span<const int64_t> shape, bool raw,
                   inference::ModelInferResponse* response);

}  // namespace tierserve::kserve

#endif  // TIERSERVE_SERVER_KSERVE_REQUEST_H_
