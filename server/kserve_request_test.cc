#include "server/kserve_request.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve::kserve {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A raw BYTES element: 4-byte little-endian length, then the bytes.
std::string Element(const std::string& bytes) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  std::string out = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8 & 0xff),
                     static_cast<char>(n >> 16 & 0xff), static_cast<char>(n >> 24 & 0xff)};
  return out + bytes;
}

void ExpectInvalid(const absl::Status& s, const std::string& part) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(part));
}

// --- DecodeBytesTensor / EncodeBytesTensor -----------------------------------

TEST(BytesTensor, DecodesLittleEndianLengthPrefixedElements) {
  // 0x0102 = 258 bytes: the length's second byte counts.
  const std::string long_one(258, 'x');
  const std::string raw = std::string("\x03\x00\x00\x00" "abc", 7) + std::string("\x00\x00\x00\x00", 4) +
                          std::string("\x02\x01\x00\x00", 4) + long_one;
  absl::StatusOr<std::vector<std::string>> got = DecodeBytesTensor(raw, 3, "t");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre("abc", "", long_one));
}

TEST(BytesTensor, EncodeIsTheInverseOfDecode) {
  const std::vector<std::string> elements = {"", "a", "h\xc3\xa9llo", std::string(70000, 'z'),
                                             std::string("\0nul\0", 5)};
  const std::string raw = EncodeBytesTensor(elements);
  EXPECT_EQ(raw.substr(0, 9), std::string("\x00\x00\x00\x00\x01\x00\x00\x00" "a", 9));
  absl::StatusOr<std::vector<std::string>> back = DecodeBytesTensor(raw, 5, "t");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, elements);
  EXPECT_EQ(EncodeBytesTensor({}), "");
  EXPECT_TRUE(DecodeBytesTensor("", 0, "t").ok());
}

TEST(BytesTensor, TruncatedLengthPrefix) {
  ExpectInvalid(DecodeBytesTensor(std::string("\x03\x00\x00", 3), 1, "text_input").status(),
                "text_input: the raw contents end at byte 3, inside the 4-byte length of element 0 of 1");
  // The second element's prefix is cut.
  ExpectInvalid(DecodeBytesTensor(Element("ab") + std::string("\x01\x00", 2), 2, "text_input").status(),
                "inside the 4-byte length of element 1 of 2");
  // No bytes at all for one element.
  ExpectInvalid(DecodeBytesTensor("", 1, "text_input").status(), "end at byte 0");
}

TEST(BytesTensor, LengthPastTheEnd) {
  ExpectInvalid(DecodeBytesTensor(std::string("\x05\x00\x00\x00" "abc", 7), 1, "text_input").status(),
                "text_input: element 0 says it has 5 bytes, but only 3 bytes of the raw contents are left");
  // A length near 4 GiB is refused before anything is copied.
  ExpectInvalid(DecodeBytesTensor(std::string("\xff\xff\xff\xff" "abc", 7), 1, "t").status(),
                "element 0 says it has 4294967295 bytes, but only 3");
}

TEST(BytesTensor, ElementCountMustMatchTheShape) {
  // More bytes than the shape's elements.
  ExpectInvalid(DecodeBytesTensor(Element("a") + Element("b"), 1, "text_input").status(),
                "the raw contents hold 5 bytes past the 1 elements its shape says it has");
  // Fewer.
  ExpectInvalid(DecodeBytesTensor(Element("a"), 2, "text_input").status(), "element 1 of 2");
}

// --- ReadTextInput ------------------------------------------------------------

ModelInferRequest RawRequest(const std::vector<std::string>& prompts, std::vector<int64_t> shape = {}) {
  ModelInferRequest req;
  req.set_model_name("m");
  auto* in = req.add_inputs();
  in->set_name("text_input");
  in->set_datatype("BYTES");
  if (shape.empty()) shape = {static_cast<int64_t>(prompts.size())};
  for (int64_t d : shape) in->add_shape(d);
  req.add_raw_input_contents(EncodeBytesTensor(prompts));
  return req;
}

TEST(ReadTextInput, RawContentsAsTritonclientSendsThem) {
  absl::StatusOr<TextInput> in = ReadTextInput(RawRequest({"Hello"}), 4, "why");
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_THAT(in->prompts, ElementsAre("Hello"));
  EXPECT_THAT(in->shape, ElementsAre(1));
  EXPECT_TRUE(in->raw);
}

TEST(ReadTextInput, BytesContentsAndABatchDimension) {
  ModelInferRequest req;
  auto* in = req.add_inputs();
  in->set_name("text_input");
  in->set_datatype("BYTES");
  in->add_shape(2);
  in->add_shape(1);
  in->mutable_contents()->add_bytes_contents("one");
  in->mutable_contents()->add_bytes_contents("two");
  absl::StatusOr<TextInput> got = ReadTextInput(req, 2, "why");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->prompts, ElementsAre("one", "two"));
  EXPECT_THAT(got->shape, ElementsAre(2, 1));
  EXPECT_FALSE(got->raw);
}

TEST(ReadTextInput, WrongDatatype) {
  ModelInferRequest req = RawRequest({"Hello"});
  req.mutable_inputs(0)->set_datatype("FP32");
  ExpectInvalid(ReadTextInput(req, 4, "why").status(), "text_input has datatype \"FP32\"; it must be BYTES");
}

TEST(ReadTextInput, WrongShapes) {
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {1, 2}, {1, 1, 1}, {0}, {-1}, {2, 0}}) {
    ModelInferRequest req = RawRequest({"Hello"});
    req.mutable_inputs(0)->clear_shape();
    for (int64_t d : shape) req.mutable_inputs(0)->add_shape(d);
    ExpectInvalid(ReadTextInput(req, 4, "why").status(), "; it must be [N] or [N, 1], N prompts, 1 <= N <= 4");
  }
  ModelInferRequest scalar = RawRequest({"Hello"});
  scalar.mutable_inputs(0)->clear_shape();
  ExpectInvalid(ReadTextInput(scalar, 4, "why").status(), "text_input has shape []");
}

TEST(ReadTextInput, MorePromptsThanAllowed) {
  ExpectInvalid(ReadTextInput(RawRequest({"a", "b", "c"}), 2, "the model's max_batch_size").status(),
                "text_input has shape [3], 3 prompts; at most 2 per request (the model's max_batch_size)");
  // A huge N is refused before anything is read or allocated.
  ModelInferRequest req = RawRequest({"a"});
  req.mutable_inputs(0)->set_shape(0, int64_t{1} << 62);
  ExpectInvalid(ReadTextInput(req, 8, "why").status(), "at most 8 per request");
}

TEST(ReadTextInput, ShapeAndRawContentsDisagree) {
  ModelInferRequest req = RawRequest({"a", "b"}, {3});
  ExpectInvalid(ReadTextInput(req, 4, "why").status(), "text_input: the raw contents end at byte 10");
  ModelInferRequest truncated = RawRequest({"Hello"});
  truncated.set_raw_input_contents(0, truncated.raw_input_contents(0).substr(0, 6));
  ExpectInvalid(ReadTextInput(truncated, 4, "why").status(), "element 0 says it has 5 bytes, but only 2");
}

TEST(ReadTextInput, MissingOrUnknownInputs) {
  ModelInferRequest none;
  ExpectInvalid(ReadTextInput(none, 4, "why").status(),
                "the request has no input tensor; send one input tensor, text_input (BYTES");
  ModelInferRequest other = RawRequest({"Hello"});
  other.mutable_inputs(0)->set_name("prompt");
  ExpectInvalid(ReadTextInput(other, 4, "why").status(),
                "unknown input tensor \"prompt\"; send one input tensor, text_input");
  ModelInferRequest twice = RawRequest({"Hello"});
  *twice.add_inputs() = twice.inputs(0);
  ExpectInvalid(ReadTextInput(twice, 4, "why").status(), "text_input is sent 2 times");
}

TEST(ReadTextInput, WhereTheElementsComeFrom) {
  ModelInferRequest both = RawRequest({"Hello"});
  both.mutable_inputs(0)->mutable_contents()->add_bytes_contents("Hello");
  ExpectInvalid(ReadTextInput(both, 4, "why").status(), "has both raw_input_contents and contents");
  ModelInferRequest two_raw = RawRequest({"Hello"});
  two_raw.add_raw_input_contents(Element("x"));
  ExpectInvalid(ReadTextInput(two_raw, 4, "why").status(), "raw_input_contents has 2 entries but there is one input");
  ModelInferRequest no_data = RawRequest({"Hello"});
  no_data.clear_raw_input_contents();
  ExpectInvalid(ReadTextInput(no_data, 4, "why").status(), "text_input has no data");
  ModelInferRequest typed = no_data;
  typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.0f);
  ExpectInvalid(ReadTextInput(typed, 4, "why").status(), "typed contents other than bytes_contents");
  ModelInferRequest count = no_data;
  count.mutable_inputs(0)->mutable_contents()->add_bytes_contents("a");
  count.mutable_inputs(0)->mutable_contents()->add_bytes_contents("b");
  ExpectInvalid(ReadTextInput(count, 4, "why").status(),
                "text_input has shape [1] but 2 elements in contents.bytes_contents; send 1");
}

TEST(ReadTextInput, PromptsMustBeNonEmptyUtf8) {
  ExpectInvalid(ReadTextInput(RawRequest({"ok", ""}), 4, "why").status(), "text_input[1] is empty");
  ExpectInvalid(ReadTextInput(RawRequest({"caf\xc3"}), 4, "why").status(),
                "text_input[0] is not valid UTF-8 (at byte 3)");
  ExpectInvalid(ReadTextInput(RawRequest({"a\xff" "b"}), 4, "why").status(), "(at byte 1)");
}

TEST(ReadTextInput, OutputsAndTensorParameters) {
  ModelInferRequest ok = RawRequest({"Hello"});
  ok.add_outputs()->set_name("text_output");
  EXPECT_TRUE(ReadTextInput(ok, 4, "why").ok());
  ModelInferRequest other = RawRequest({"Hello"});
  other.add_outputs()->set_name("logits");
  ExpectInvalid(ReadTextInput(other, 4, "why").status(),
                "unknown output \"logits\"; tierserve's models give one output, text_output");
  ModelInferRequest classification = ok;
  (*classification.mutable_outputs(0)->mutable_parameters())["classification"].set_int64_param(3);
  ExpectInvalid(ReadTextInput(classification, 4, "why").status(),
                "output text_output has the parameter \"classification\"");
  ModelInferRequest shm = RawRequest({"Hello"});
  (*shm.mutable_inputs(0)->mutable_parameters())["shared_memory_region"].set_string_param("r");
  ExpectInvalid(ReadTextInput(shm, 4, "why").status(), "text_input has the parameter \"shared_memory_region\"");
}

// --- ReadParameters -----------------------------------------------------------

using ParameterMap = google::protobuf::Map<std::string, InferParameter>;

TEST(ReadParameters, EveryParameterMapsOntoTheNativeOne) {
  ParameterMap p;
  p["max_tokens"].set_int64_param(7);
  p["temperature"].set_double_param(0.5);
  p["top_k"].set_int64_param(40);
  p["top_p"].set_double_param(0.9);
  p["min_p"].set_double_param(0.05);
  p["repetition_penalty"].set_double_param(1.1);
  p["seed"].set_int64_param(42);
  p["stop"].set_string_param("\n\n");
  p["ignore_eos"].set_bool_param(true);
  p["triton_enable_empty_final_response"].set_bool_param(true);
  absl::StatusOr<InferOptions> o = ReadParameters(p);
  ASSERT_TRUE(o.ok()) << o.status();
  const v1::GenerationParameters& g = o->generation;
  EXPECT_EQ(g.max_new_tokens(), 7);
  EXPECT_FLOAT_EQ(g.temperature(), 0.5f);
  EXPECT_EQ(g.top_k(), 40);
  EXPECT_FLOAT_EQ(g.top_p(), 0.9f);
  EXPECT_FLOAT_EQ(g.min_p(), 0.05f);
  EXPECT_FLOAT_EQ(g.repetition_penalty(), 1.1f);
  EXPECT_EQ(g.seed(), 42u);
  EXPECT_THAT(g.stop(), ElementsAre("\n\n"));
  EXPECT_TRUE(g.ignore_eos());
  EXPECT_TRUE(o->empty_final_response);
  EXPECT_FALSE(g.logprobs());
}

TEST(ReadParameters, NoneLeavesTheNativeDefaultsUnset) {
  absl::StatusOr<InferOptions> o = ReadParameters(ParameterMap());
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->generation.has_max_new_tokens());
  EXPECT_FALSE(o->generation.has_temperature());
  EXPECT_FALSE(o->generation.has_seed());
  EXPECT_FALSE(o->empty_final_response);
}

TEST(ReadParameters, WholeNumbersMayBeIntegersAndSeedsUint64) {
  // tritonclient sends Python's `0` as int64_param.
  ParameterMap p;
  p["temperature"].set_int64_param(0);
  p["top_p"].set_int64_param(1);
  p["seed"].set_uint64_param(18446744073709551615u);
  p["max_tokens"].set_uint64_param(9);
  absl::StatusOr<InferOptions> o = ReadParameters(p);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->generation.has_temperature());
  EXPECT_EQ(o->generation.temperature(), 0.0f);
  EXPECT_EQ(o->generation.top_p(), 1.0f);
  EXPECT_EQ(o->generation.seed(), 18446744073709551615u);
  EXPECT_EQ(o->generation.max_new_tokens(), 9);
}

TEST(ReadParameters, UnknownNamesListTheAllowedOnes) {
  ParameterMap p;
  p["max_new_tokens"].set_int64_param(5);
  const absl::Status s = ReadParameters(p).status();
  ExpectInvalid(s, "unknown parameter \"max_new_tokens\"; allowed: max_tokens (int64), temperature (double)");
  EXPECT_THAT(std::string(s.message()), HasSubstr("stop (string, or a JSON array of strings), ignore_eos (bool)"));
}

TEST(ReadParameters, WrongTypesNameTheParameterAndTheTypeWanted) {
  auto one = [](const std::string& name, auto set) {
    ParameterMap p;
    set(p[name]);
    return ReadParameters(p).status();
  };
  ExpectInvalid(one("temperature", [](InferParameter& v) { v.set_string_param("0.7"); }),
                "parameter temperature is a string (string_param); it must be a number");
  ExpectInvalid(one("max_tokens", [](InferParameter& v) { v.set_double_param(8.0); }),
                "parameter max_tokens is a double (double_param); it must be an integer (int64_param or uint64_param)");
  ExpectInvalid(one("ignore_eos", [](InferParameter& v) { v.set_int64_param(1); }),
                "parameter ignore_eos is an integer (int64_param); it must be a bool (bool_param)");
  ExpectInvalid(one("stop", [](InferParameter& v) { v.set_bool_param(true); }),
                "parameter stop is a bool (bool_param); it must be a string");
  ExpectInvalid(one("top_k", [](InferParameter&) {}), "parameter top_k is unset (no value)");
}

TEST(ReadParameters, IntegerRanges) {
  auto with = [](const std::string& name, int64_t v) {
    ParameterMap p;
    p[name].set_int64_param(v);
    return ReadParameters(p).status();
  };
  ExpectInvalid(with("seed", -1), "parameter seed is -1; it must be >= 0");
  ExpectInvalid(with("top_k", -3), "parameter top_k is -3; it must be >= 0");
  ExpectInvalid(with("top_k", int64_t{1} << 40), "fit in 32 bits");
  ExpectInvalid(with("max_tokens", int64_t{1} << 40), "between 1 and the model's max_sequence_length");
  // In 32 bits, max_tokens' range against the model is BuildGenerationRequest's to check.
  EXPECT_TRUE(with("max_tokens", 0).ok());
}

TEST(ReadParameters, StopIsOneStringOrAJsonArray) {
  auto stop = [](const std::string& v) {
    ParameterMap p;
    p["stop"].set_string_param(v);
    return ReadParameters(p);
  };
  EXPECT_THAT(stop("END")->generation.stop(), ElementsAre("END"));
  EXPECT_THAT(stop("[\"a\", \"\\n\"]")->generation.stop(), ElementsAre("a", "\n"));
  EXPECT_THAT(stop("[\"[x\"]")->generation.stop(), ElementsAre("[x"));
  EXPECT_THAT(stop("[]")->generation.stop(), ElementsAre());
  ExpectInvalid(stop("[x").status(), "parameter stop begins with '[' but is not a JSON array");
  ExpectInvalid(stop("[\"a\", 3]").status(), "parameter stop: element 1 of the JSON array is not a string");
}

TEST(ReadParameters, TritonsParametersTierserveDoesNotHave) {
  auto with = [](const std::string& name) {
    ParameterMap p;
    p[name].set_int64_param(1);
    return ReadParameters(p).status();
  };
  ExpectInvalid(with("timeout"), "give the call a gRPC deadline instead");
  ExpectInvalid(with("priority"), "first come, first served");
  ExpectInvalid(with("sequence_id"), "sequence batching");
}

TEST(ReadParameters, OfSeveralBadOnesTheFirstByNameIsNamed) {
  ParameterMap p;
  p["zeta"].set_int64_param(1);
  p["alpha"].set_int64_param(1);
  p["temperature"].set_string_param("hot");
  for (int i = 0; i < 3; ++i) ExpectInvalid(ReadParameters(p).status(), "unknown parameter \"alpha\"");
}

// --- versions and outputs -----------------------------------------------------

TEST(CheckModelVersion, EmptyOrOneElseNotFound) {
  EXPECT_TRUE(CheckModelVersion("", "m").ok());
  EXPECT_TRUE(CheckModelVersion("1", "m").ok());
  const absl::Status s = CheckModelVersion("2", "m");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "model m has no version \"2\"; its one version is \"1\" (or send \"\")");
}

TEST(AddTextOutput, RawOrContentsWithTheInputsShape) {
  inference::ModelInferResponse raw;
  AddTextOutput({"x", "yz"}, std::vector<int64_t>{2, 1}, /*raw=*/true, &raw);
  ASSERT_EQ(raw.outputs_size(), 1);
  EXPECT_EQ(raw.outputs(0).name(), "text_output");
  EXPECT_EQ(raw.outputs(0).datatype(), "BYTES");
  EXPECT_THAT(raw.outputs(0).shape(), ElementsAre(2, 1));
  EXPECT_EQ(raw.outputs(0).contents().bytes_contents_size(), 0);
  ASSERT_EQ(raw.raw_output_contents_size(), 1);
  EXPECT_EQ(raw.raw_output_contents(0), Element("x") + Element("yz"));

  inference::ModelInferResponse typed;
  AddTextOutput({"x"}, std::vector<int64_t>{1}, /*raw=*/false, &typed);
  EXPECT_EQ(typed.raw_output_contents_size(), 0);
  EXPECT_THAT(typed.outputs(0).contents().bytes_contents(), ElementsAre("x"));
}

}  // namespace
}  // namespace tierserve::kserve
