#include "server/kserve_request.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/base/config_error.h"
#include "runtime/tokenizer/utf8.h"

namespace tierserve::kserve {
namespace {

using inference::InferParameter;

constexpr char kShapeRule[] = "[N] or [N, 1], N prompts";
constexpr char kAllowedParameters[] =
    "max_tokens (int64), temperature (double), top_k (int64), top_p (double), min_p (double), "
    "repetition_penalty (double), seed (int64 >= 0 or uint64), stop (string, or a JSON array of "
    "strings), ignore_eos (bool), triton_enable_empty_final_response (bool)";

std::string ShapeString(absl::Span<const int64_t> shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// The byte offset of the first invalid UTF-8 sequence in `text`, or -1.
int64_t FirstInvalidUtf8(const std::string& text) {
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Char c = DecodeUtf8At(text, pos);
    if (!c.valid) return static_cast<int64_t>(pos);
    pos += c.len;
  }
  return -1;
}

bool HasTypedContents(const inference::InferTensorContents& c) {
  return c.bool_contents_size() > 0 || c.int_contents_size() > 0 || c.int64_contents_size() > 0 ||
         c.uint_contents_size() > 0 || c.uint64_contents_size() > 0 || c.fp32_contents_size() > 0 ||
         c.fp64_contents_size() > 0;
}

// The first key of a parameter map, in name order (a map's own order is unspecified).
std::string FirstKey(const google::protobuf::Map<std::string, InferParameter>& params) {
  std::string first;
  for (const auto& [key, value] : params)
    if (first.empty() || key < first) first = key;
  return first;
}

const char* TypeName(const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kBoolParam: return "a bool (bool_param)";
    case InferParameter::kInt64Param: return "an integer (int64_param)";
    case InferParameter::kStringParam: return "a string (string_param)";
    case InferParameter::kDoubleParam: return "a double (double_param)";
    case InferParameter::kUint64Param: return "an integer (uint64_param)";
    case InferParameter::PARAMETER_CHOICE_NOT_SET: break;
  }
  return "unset (no value)";
}

absl::Status WrongType(const std::string& name, const InferParameter& p, const char* wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("parameter ", name, " is ", TypeName(p), "; it must be ", wanted));
}

// An integer parameter (int64_param or uint64_param) within [lo, hi].
absl::StatusOr<int64_t> IntegerParameter(const std::string& name, const InferParameter& p, int64_t lo, int64_t hi,
                                         const char* range) {
  int64_t v = 0;
  if (p.parameter_choice_case() == InferParameter::kInt64Param) {
    v = p.int64_param();
  } else if (p.parameter_choice_case() == InferParameter::kUint64Param) {
    if (p.uint64_param() > static_cast<uint64_t>(hi)) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " is ", p.uint64_param(), "; ", range));
    }
    v = static_cast<int64_t>(p.uint64_param());
  } else {
    return WrongType(name, p, "an integer (int64_param or uint64_param)");
  }
  if (v < lo || v > hi) return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " is ", v, "; ", range));
  return v;
}

// A number parameter: double_param, or an integer (Python's `1` arrives as int64_param).
absl::StatusOr<float> NumberParameter(const std::string& name, const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kDoubleParam: return static_cast<float>(p.double_param());
    case InferParameter::kInt64Param: return static_cast<float>(p.int64_param());
    case InferParameter::kUint64Param: return static_cast<float>(p.uint64_param());
    default: return WrongType(name, p, "a number (double_param, or int64_param for a whole number)");
  }
}

absl::StatusOr<bool> BoolParameter(const std::string& name, const InferParameter& p) {
  if (p.parameter_choice_case() != InferParameter::kBoolParam) return WrongType(name, p, "a bool (bool_param)");
  return p.bool_param();
}

// `stop`: one stop string, or a JSON array of them when the value begins
// with '[' (so a stop string that itself begins with '[' is sent as a
// one-element array).
absl::Status ReadStop(const InferParameter& p, v1::GenerationParameters* out) {
  if (p.parameter_choice_case() != InferParameter::kStringParam) {
    return WrongType("stop", p, "a string (string_param): one stop string, or a JSON array of strings");
  }
  const std::string& value = p.string_param();
  if (value.empty() || value.front() != '[') {
    out->add_stop(value);
    return absl::OkStatus();
  }
  const nlohmann::json list = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (list.is_discarded() || !list.is_array()) {
    return absl::InvalidArgumentError(
        "parameter stop begins with '[' but is not a JSON array; send one stop string, or a JSON array of "
        "strings (a stop string that begins with '[' goes in an array: [\"[...\"])");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter stop: element ", i, " of the JSON array is not a string; send strings only"));
    }
    out->add_stop(list[i].get<std::string>());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> DecodeBytesTensor(absl::string_view raw, int64_t elements,
                                                           absl::string_view tensor) {
  constexpr size_t kLengthBytes = 4;
  std::vector<std::string> out;
  size_t pos = 0;
  for (int64_t i = 0; i < elements; ++i) {
    if (raw.size() - pos < kLengthBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          tensor, ": the raw contents end at byte ", raw.size(), ", inside the 4-byte length of element ", i,
          " of ", elements, " (each BYTES element is a 4-byte little-endian length, then that many bytes)"));
    }
    const auto* b = reinterpret_cast<const unsigned char*>(raw.data() + pos);
    const uint32_t length = static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 |
                            static_cast<uint32_t>(b[2]) << 16 | static_cast<uint32_t>(b[3]) << 24;
    pos += kLengthBytes;
    if (length > raw.size() - pos) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, ": element ", i, " says it has ", length,
                                                     " bytes, but only ", raw.size() - pos,
                                                     " bytes of the raw contents are left"));
    }
    out.emplace_back(raw.substr(pos, length));
    pos += length;
  }
  if (pos != raw.size()) {
    return absl::InvalidArgumentError(absl::StrCat(tensor, ": the raw contents hold ", raw.size() - pos,
                                                   " bytes past the ", elements,
                                                   " elements its shape says it has"));
  }
  return out;
}

std::string EncodeBytesTensor(absl::Span<const std::string> elements) {
  std::string out;
  size_t total = 0;
  for (const std::string& e : elements) total += 4 + e.size();
  out.reserve(total);
  for (const std::string& e : elements) {
    const uint32_t n = static_cast<uint32_t>(e.size());
    const char length[4] = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8 & 0xff),
                            static_cast<char>(n >> 16 & 0xff), static_cast<char>(n >> 24 & 0xff)};
    out.append(length, 4);
    out.append(e);
  }
  return out;
}

absl::StatusOr<TextInput> ReadTextInput(const inference::ModelInferRequest& request, int64_t max_prompts,
                                        absl::string_view limit) {
  const std::string want =
      absl::StrCat("send one input tensor, ", kTextInput, " (", kBytes, ", shape ", kShapeRule, ")");
  if (request.inputs().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the request has no input tensor; ", want));
  }
  for (const auto& input : request.inputs()) {
    if (input.name() != kTextInput) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input tensor ", QuoteForMessage(input.name()), "; ", want));
    }
  }
  if (request.inputs_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " is sent ", request.inputs_size(), " times; ", want));
  }
  const auto& input = request.inputs(0);
  if (input.datatype() != kBytes) {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has datatype ", QuoteForMessage(input.datatype()),
                                                   "; it must be ", kBytes, " (UTF-8 prompts)"));
  }
  const auto& shape = input.shape();
  const bool shape_ok = (shape.size() == 1 || (shape.size() == 2 && shape[1] == 1)) && shape[0] >= 1;
  if (!shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has shape ", ShapeString(shape), "; it must be ",
                                                   kShapeRule, ", 1 <= N <= ", max_prompts));
  }
  const int64_t n = shape[0];
  if (n > max_prompts) {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has shape ", ShapeString(shape), ", ", n,
                                                   " prompts; at most ", max_prompts, " per request (", limit, ")"));
  }
  if (!input.parameters().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has the parameter ",
                                                   QuoteForMessage(FirstKey(input.parameters())),
                                                   "; tierserve takes no tensor parameters (no shared memory)"));
  }
  for (const auto& output : request.outputs()) {
    if (output.name() != kTextOutput) {
      return absl::InvalidArgumentError(absl::StrCat("unknown output ", QuoteForMessage(output.name()),
                                                     "; tierserve's models give one output, ", kTextOutput));
    }
    if (!output.parameters().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output ", kTextOutput, " has the parameter ", QuoteForMessage(FirstKey(output.parameters())),
          "; tierserve takes no output parameters (no classification, no shared memory)"));
    }
  }

  TextInput in;
  in.shape.assign(shape.begin(), shape.end());
  const auto& contents = input.contents();
  if (HasTypedContents(contents)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kTextInput, " has typed contents other than bytes_contents; a ", kBytes,
                     " tensor's elements go in contents.bytes_contents or raw_input_contents"));
  }
  if (request.raw_input_contents_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                                                   " entries but there is one input; send one, for ", kTextInput));
  }
  if (request.raw_input_contents_size() == 1) {
    if (contents.bytes_contents_size() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has both raw_input_contents and contents; send "
                                                     "its elements in one of them"));
    }
    absl::StatusOr<std::vector<std::string>> prompts = DecodeBytesTensor(request.raw_input_contents(0), n, kTextInput);
    if (!prompts.ok()) return prompts.status();
    in.prompts = *std::move(prompts);
    in.raw = true;
  } else if (contents.bytes_contents_size() > 0) {
    if (contents.bytes_contents_size() != n) {
      return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has shape ", ShapeString(shape), " but ",
                                                     contents.bytes_contents_size(),
                                                     " elements in contents.bytes_contents; send ", n));
    }
    in.prompts.assign(contents.bytes_contents().begin(), contents.bytes_contents().end());
  } else {
    return absl::InvalidArgumentError(absl::StrCat(kTextInput, " has no data; send its elements in "
                                                   "raw_input_contents or contents.bytes_contents"));
  }
  for (size_t i = 0; i < in.prompts.size(); ++i) {
    if (in.prompts[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(kTextInput, "[", i, "] is empty; send non-empty text"));
    }
    if (const int64_t bad = FirstInvalidUtf8(in.prompts[i]); bad >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(kTextInput, "[", i, "] is not valid UTF-8 (at byte ", bad, "); prompts are UTF-8 text"));
    }
  }
  return in;
}

absl::StatusOr<InferOptions> ReadParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters) {
  // In name order, so that of several bad parameters the same one is named every time.
  std::vector<std::string> names;
  for (const auto& [name, value] : parameters) names.push_back(name);
  std::sort(names.begin(), names.end());

  InferOptions options;
  v1::GenerationParameters& g = options.generation;
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  for (const std::string& name : names) {
    const InferParameter& p = parameters.at(name);
    absl::Status s;
    if (name == "max_tokens") {
      absl::StatusOr<int64_t> v =
          IntegerParameter(name, p, std::numeric_limits<int32_t>::min(), kInt32Max,
                           "it must be between 1 and the model's max_sequence_length");
      if (v.ok()) g.set_max_new_tokens(static_cast<int32_t>(*v));
      s = v.status();
    } else if (name == "top_k") {
      absl::StatusOr<int64_t> v =
          IntegerParameter(name, p, 0, kInt32Max, "it must be >= 0 (0 = no limit) and fit in 32 bits");
      if (v.ok()) g.set_top_k(static_cast<int32_t>(*v));
      s = v.status();
    } else if (name == "seed") {
      if (p.parameter_choice_case() == InferParameter::kUint64Param) {
        g.set_seed(p.uint64_param());
      } else {
        absl::StatusOr<int64_t> v = IntegerParameter(name, p, 0, std::numeric_limits<int64_t>::max(),
                                                     "it must be >= 0 (or a uint64_param)");
        if (v.ok()) g.set_seed(static_cast<uint64_t>(*v));
        s = v.status();
      }
    } else if (name == "temperature" || name == "top_p" || name == "min_p" || name == "repetition_penalty") {
      absl::StatusOr<float> v = NumberParameter(name, p);
      if (v.ok()) {
        if (name == "temperature") g.set_temperature(*v);
        if (name == "top_p") g.set_top_p(*v);
        if (name == "min_p") g.set_min_p(*v);
        if (name == "repetition_penalty") g.set_repetition_penalty(*v);
      }
      s = v.status();
    } else if (name == "stop") {
      s = ReadStop(p, &g);
    } else if (name == "ignore_eos") {
      absl::StatusOr<bool> v = BoolParameter(name, p);
      if (v.ok()) g.set_ignore_eos(*v);
      s = v.status();
    } else if (name == "triton_enable_empty_final_response") {
      absl::StatusOr<bool> v = BoolParameter(name, p);
      if (v.ok()) options.empty_final_response = *v;
      s = v.status();
    } else if (name == "sequence_id" || name == "sequence_start" || name == "sequence_end") {
      s = absl::InvalidArgumentError(absl::StrCat("parameter ", name, " is Triton's sequence batching, which "
                                                  "tierserve does not have; allowed: ", kAllowedParameters));
    } else if (name == "priority") {
      s = absl::InvalidArgumentError(absl::StrCat("parameter priority is not supported: tierserve serves "
                                                  "requests first come, first served; allowed: ", kAllowedParameters));
    } else if (name == "timeout") {
      s = absl::InvalidArgumentError(absl::StrCat("parameter timeout is not supported: give the call a gRPC "
                                                  "deadline instead (tritonclient: client_timeout); allowed: ",
                                                  kAllowedParameters));
    } else {
      s = absl::InvalidArgumentError(
          absl::StrCat("unknown parameter ", QuoteForMessage(name), "; allowed: ", kAllowedParameters));
    }
    if (!s.ok()) return s;
  }
  return options;
}

absl::Status CheckModelVersion(absl::string_view version, absl::string_view model) {
  if (version.empty() || version == kModelVersion) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model ", model, " has no version ", QuoteForMessage(version),
                                          "; its one version is \"", kModelVersion, "\" (or send \"\")"));
}

void AddTextOutput(absl::Span<const std::string> texts, absl::Span<const int64_t> shape, bool raw,
                   inference::ModelInferResponse* response) {
  auto* out = response->add_outputs();
  out->set_name(kTextOutput);
  out->set_datatype(kBytes);
  for (int64_t d : shape) out->add_shape(d);
  if (raw) {
    response->add_raw_output_contents(EncodeBytesTensor(texts));
  } else {
    for (const std::string& t : texts) out->mutable_contents()->add_bytes_contents(t);
  }
}

}  // namespace tierserve::kserve
