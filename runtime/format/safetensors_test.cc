#include "runtime/format/safetensors.h"

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/common/dtype.h"
#include "runtime/format/testing/safetensors_writer.h"
#include "runtime/format/testing/test_files.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 13 + seed * 29 + 1) & 0xFF);
  return s;
}

std::string Str(const TensorView* t) {
  return std::string(reinterpret_cast<const char*>(t->data), t->nbytes);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  // Writes `bytes` as a single file and opens it expecting failure; returns
  // the message, which must name the file.
  std::string OpenError(const std::string& bytes) {
    // A new file each time; see the note in gguf_test_fixture.h.
    path_ = dir_.File("model" + std::to_string(files_++) + ".safetensors");
    EXPECT_TRUE(WriteFile(path_, bytes).ok());
    absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(path_);
    EXPECT_FALSE(s.ok()) << "expected an error";
    if (s.ok()) return "";
    EXPECT_THAT(s.status().message(), HasSubstr(path_));
    return std::string(s.status().message());
  }
  std::string HeaderError(const std::string& json, const std::string& buffer) {
    return OpenError(FrameSafetensors(json, buffer));
  }

  ScopedTempDir dir_;
  std::string path_;
  int files_ = 0;
};

TEST_F(SafetensorsTest, EverySupportedDtypeRoundTrips) {
  struct Case {
    const char* name;
    DType dtype;
    std::vector<int64_t> shape;
    size_t nbytes;
  };
  const std::vector<Case> cases = {
      {"f32", DType::kF32, {2, 3}, 24},  {"f16", DType::kF16, {3}, 6},
      {"bf16", DType::kBF16, {1, 2}, 4}, {"f64", DType::kF64, {2}, 16},
      {"i8", DType::kI8, {5}, 5},        {"u8", DType::kU8, {7}, 7},
      {"i16", DType::kI16, {3}, 6},      {"i32", DType::kI32, {1}, 4},
      {"i64", DType::kI64, {2, 1}, 16},  {"mask", DType::kBool, {3}, 3},
      {"scalar", DType::kF32, {}, 4},    {"empty", DType::kF16, {0, 3}, 0},
  };
  SafetensorsWriter w;
  w.AddMetadata("format", "pt");
  for (size_t i = 0; i < cases.size(); ++i) {
    w.AddTensor(cases[i].name, cases[i].dtype, cases[i].shape,
                Bytes(cases[i].nbytes, static_cast<uint8_t>(i)));
  }
  const std::string path = dir_.File("one.safetensors");
  ASSERT_TRUE(w.WriteTo(path).ok());
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Source(), path);
  EXPECT_THAT((*s)->Names(), ElementsAre("bf16", "empty", "f16", "f32", "f64", "i16", "i32", "i64",
                                         "i8", "mask", "scalar", "u8"));
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const TensorView* t = (*s)->Find(cases[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, cases[i].dtype);
    EXPECT_EQ(t->shape, cases[i].shape);
    EXPECT_EQ(t->file, path);
    EXPECT_EQ(Str(t), Bytes(cases[i].nbytes, static_cast<uint8_t>(i)));
  }
  EXPECT_EQ((*s)->Find("scalar")->NumElements(), 1);
  EXPECT_EQ((*s)->Find("nope"), nullptr);
}

TEST_F(SafetensorsTest, FolderWithSingleFile) {
  SafetensorsWriter w;
  w.AddTensor("lm_head.weight", DType::kF32, {2, 2}, Bytes(16, 1));
  ASSERT_TRUE(w.WriteTo(dir_.File("model.safetensors")).ok());
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(dir_.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Source(), dir_.path());
  ASSERT_NE((*s)->Find("lm_head.weight"), nullptr);
  EXPECT_EQ((*s)->Find("lm_head.weight")->file, dir_.File("model.safetensors"));
}

TEST_F(SafetensorsTest, ShardedCheckpoint) {
  SafetensorsWriter a, b;
  a.AddTensor("model.embed_tokens.weight", DType::kBF16, {4, 2}, Bytes(16, 1));
  a.AddTensor("model.layers.0.mlp.up_proj.weight", DType::kF16, {2, 2}, Bytes(8, 2));
  b.AddTensor("model.norm.weight", DType::kF32, {2}, Bytes(8, 3));
  b.AddTensor("lm_head.weight", DType::kF32, {4, 2}, Bytes(32, 4));
  ASSERT_TRUE(a.WriteTo(dir_.File("model-00001-of-00002.safetensors")).ok());
  ASSERT_TRUE(b.WriteTo(dir_.File("model-00002-of-00002.safetensors")).ok());
  ASSERT_TRUE(
      WriteSafetensorsIndex(
          dir_.path(), {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                        {"model.layers.0.mlp.up_proj.weight", "model-00001-of-00002.safetensors"},
                        {"model.norm.weight", "model-00002-of-00002.safetensors"},
                        {"lm_head.weight", "model-00002-of-00002.safetensors"}})
          .ok());
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(dir_.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->Source(), dir_.path());
  EXPECT_THAT((*s)->Names(), ElementsAre("lm_head.weight", "model.embed_tokens.weight",
                                         "model.layers.0.mlp.up_proj.weight", "model.norm.weight"));
  const TensorView* lm = (*s)->Find("lm_head.weight");
  ASSERT_NE(lm, nullptr);
  EXPECT_EQ(lm->file, dir_.File("model-00002-of-00002.safetensors"));
  EXPECT_EQ(Str(lm), Bytes(32, 4));
  EXPECT_EQ(Str((*s)->Find("model.embed_tokens.weight")), Bytes(16, 1));
  EXPECT_EQ((*s)->Find("model.embed_tokens.weight")->dtype, DType::kBF16);
}

TEST_F(SafetensorsTest, ShardErrorsNameTheShardOrTensor) {
  SafetensorsWriter a;
  a.AddTensor("x", DType::kF32, {1}, Bytes(4, 1));
  ASSERT_TRUE(a.WriteTo(dir_.File("a.safetensors")).ok());
  const std::string index = dir_.File("model.safetensors.index.json");
  auto open = [&]() { return OpenSafetensors(dir_.path()).status(); };

  ASSERT_TRUE(
      WriteSafetensorsIndex(dir_.path(), {{"x", "a.safetensors"}, {"y", "b.safetensors"}}).ok());
  absl::Status st = open();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr(index));
  EXPECT_THAT(st.message(), HasSubstr("shard 'b.safetensors' (holding tensor 'y')"));
  EXPECT_THAT(st.message(), HasSubstr(dir_.File("b.safetensors")));

  ASSERT_TRUE(
      WriteSafetensorsIndex(dir_.path(), {{"x", "a.safetensors"}, {"z", "a.safetensors"}}).ok());
  st = open();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr(index));
  EXPECT_THAT(st.message(), HasSubstr("tensor 'z' is listed in shard 'a.safetensors', but that "
                                      "shard does not contain it"));

  for (const std::string bad : {"../a.safetensors", "sub/a.safetensors", "..", "", "/etc/passwd"}) {
    ASSERT_TRUE(WriteSafetensorsIndex(dir_.path(), {{"x", bad}}).ok());
    st = open();
    EXPECT_THAT(st.message(),
                HasSubstr("shard '" + bad + "' for tensor 'x' is not a plain file name"))
        << bad;
    EXPECT_THAT(st.message(), HasSubstr(index));
  }

  ASSERT_TRUE(WriteFile(index, "{\"weight_map\": [1]}").ok());
  EXPECT_THAT(open().message(), HasSubstr("\"weight_map\" is missing or not an object"));
  ASSERT_TRUE(WriteFile(index, "{\"weight_map\": {\"x\": 3}}").ok());
  EXPECT_THAT(open().message(),
              HasSubstr("weight_map entry for tensor 'x' is a non-negative integer"));
  ASSERT_TRUE(WriteFile(index, "{\"weight_map\": {").ok());
  EXPECT_THAT(open().message(), HasSubstr("the index is not valid JSON"));
  ASSERT_TRUE(
      WriteFile(index, "{\"weight_map\": {\"x\": \"a.safetensors\", \"x\": \"a.safetensors\"}}")
          .ok());
  EXPECT_THAT(open().message(), HasSubstr("has the key 'x' twice"));

  // A corrupt shard: the message chains the index, the shard and the problem.
  ASSERT_TRUE(WriteFile(dir_.File("a.safetensors"), "short").ok());
  ASSERT_TRUE(WriteSafetensorsIndex(dir_.path(), {{"x", "a.safetensors"}}).ok());
  EXPECT_THAT(open().message(), HasSubstr("shard 'a.safetensors' (holding tensor 'x'): " +
                                          dir_.File("a.safetensors") + ": file is 5 bytes"));
}

TEST_F(SafetensorsTest, MissingPathsAreNotFound) {
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(dir_.path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr(dir_.path() + ": folder holds neither"));
  const std::string missing = dir_.File("nope.safetensors");
  s = OpenSafetensors(missing);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr(missing));
}

TEST_F(SafetensorsTest, HeaderLengthErrors) {
  EXPECT_THAT(OpenError("abc"), HasSubstr("file is 3 bytes, too short"));
  EXPECT_THAT(OpenError(FrameSafetensors("{}", "").substr(0, 8)),
              HasSubstr("header length 2 runs past the end of the file (0 bytes follow"));
  std::string huge(8, '\0');
  huge[3] = 0x10;  // 0x10000000 = 268435456
  EXPECT_THAT(OpenError(huge + "{}"),
              HasSubstr("header length 268435456 exceeds the limit of 100000000"));
  std::string lie(8, '\xFF');  // 2^64 - 1: must not overflow when added to 8
  EXPECT_THAT(OpenError(lie + "{}"), HasSubstr("exceeds the limit"));
}

TEST_F(SafetensorsTest, HeaderJsonErrors) {
  EXPECT_THAT(HeaderError("{not json", ""), HasSubstr("the header is not valid JSON"));
  EXPECT_THAT(HeaderError("[1, 2]", ""),
              HasSubstr("the header is an array; expected a JSON object"));
  EXPECT_THAT(
      HeaderError("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}} x",
                  "1234"),
      HasSubstr("not valid JSON"));
  // Invalid UTF-8 inside a string.
  EXPECT_THAT(HeaderError("{\"__metadata__\": {\"k\": \"\xC3\x28\"}}", ""),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(
      HeaderError("{\"__metadata__\": {\"format\": \"pt\", \"n\": 3}}", ""),
      HasSubstr("__metadata__ value for 'n' is a non-negative integer; only strings are allowed"));
  EXPECT_THAT(HeaderError("{\"__metadata__\": [\"pt\"]}", ""),
              HasSubstr("__metadata__ is an array"));
  EXPECT_THAT(HeaderError("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                          " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                          "12345678"),
              HasSubstr("the header has the key 'a' twice"));
  // Trailing spaces, as the reference writer pads, are fine.
  path_ = dir_.File("ok.safetensors");
  ASSERT_TRUE(WriteFile(path_, FrameSafetensors("{}      ", "")).ok());
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->Names().empty());
}

// Found with tests/fuzz/safetensors_reader_fuzz: the message for a bad shape
// element quoted it with dump(), which recursed through 200000 nested arrays
// and overflowed the stack. Nesting is refused while parsing.
TEST_F(SafetensorsTest, DeepNestingIsAnErrorNotAStackOverflow) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_THAT(HeaderError(R"({"x":{"dtype":"F32","shape":[)" + deep + R"(],"data_offsets":[0,0]}})",
                          ""),
              HasSubstr(": the header nests arrays and objects deeper than 64 levels"));
  // The same image in memory, and the deepest nesting allowed.
  const std::string image = FrameSafetensors(R"({"__metadata__":{"a":)" + deep + "}}", "");
  absl::StatusOr<std::unique_ptr<WeightStore>> s = SafetensorsFromBytes(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(image.data()), image.size()), "mem");
  EXPECT_EQ(s.status().message(), "mem: the header nests arrays and objects deeper than 64 levels");
  EXPECT_THAT(HeaderError(R"({"__metadata__":{"a":)" + std::string(62, '[') + std::string(62, ']') +
                              "}}",
                          ""),
              HasSubstr("__metadata__ value for 'a' is an array; only strings are allowed"));
}

TEST_F(SafetensorsTest, FromBytesReadsTheImageInPlace) {
  SafetensorsWriter w;
  w.AddTensor("b", DType::kF32, {2}, Bytes(8, 1));
  w.AddTensor("a", DType::kI8, {3}, Bytes(3, 2));
  const std::string image = w.Serialize();
  absl::StatusOr<std::unique_ptr<WeightStore>> s = SafetensorsFromBytes(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(image.data()), image.size()), "mem");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT((*s)->Names(), ElementsAre("a", "b"));
  const TensorView* b = (*s)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Str(b), Bytes(8, 1));
  EXPECT_GE(reinterpret_cast<const char*>(b->data), image.data());
  EXPECT_LE(reinterpret_cast<const char*>(b->data) + b->nbytes, image.data() + image.size());
  EXPECT_EQ((*s)->Source(), "mem");
}

TEST_F(SafetensorsTest, EntryErrors) {
  auto one = [](const std::string& entry) { return "{\"t\": " + entry + "}"; };
  EXPECT_THAT(HeaderError(one("3"), ""), HasSubstr("tensor 't': entry is a non-negative integer"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}"), ""),
      HasSubstr("tensor 't': shape element -1 is not allowed"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 0]}"), ""),
      HasSubstr("shape element 1.5 is not allowed"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"Q9\", \"shape\": [1], \"data_offsets\": [0, 1]}"), "x"),
      HasSubstr("tensor 't': unknown dtype 'Q9'"));
  EXPECT_THAT(HeaderError(one("{\"shape\": [1], \"data_offsets\": [0, 1]}"), "x"),
              HasSubstr("\"dtype\" is missing"));
  EXPECT_THAT(HeaderError(one("{\"dtype\": \"U8\", \"data_offsets\": [0, 1]}"), "x"),
              HasSubstr("\"shape\" is missing"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1, 2]}"), "x"),
      HasSubstr("\"data_offsets\" must be an array of two non-negative integers"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [-1, 0]}"), "x"),
      HasSubstr("\"data_offsets\" must be"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776, "
                      "1099511627776], \"data_offsets\": [0, 4]}"),
                  "1234"),
      HasSubstr("tensor 't' shape [1099511627776, 1099511627776, 1099511627776] overflows"));
  EXPECT_THAT(
      HeaderError(one("{\"dtype\": \"F4\", \"shape\": [3], \"data_offsets\": [0, 1]}"), "x"),
      HasSubstr("does not fill a whole number of bytes"));
}

TEST_F(SafetensorsTest, UnsupportedDtypesAreNamed) {
  SafetensorsWriter w;
  w.AddTensor("ok", DType::kF32, {1}, Bytes(4, 1));
  w.AddRawTensor("fp8", "F8_E4M3", {4}, Bytes(4, 2));
  EXPECT_THAT(OpenError(w.Serialize()),
              HasSubstr("tensor 'fp8' has dtype F8_E4M3, which is not supported"));
  SafetensorsWriter w2;
  w2.AddRawTensor("u", "U32", {1}, Bytes(4, 2));
  EXPECT_THAT(OpenError(w2.Serialize()), HasSubstr("tensor 'u' has dtype U32"));
}

TEST_F(SafetensorsTest, OffsetsMustTileTheBuffer) {
  const std::string f32a = "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": ";
  const std::string f32b = "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": ";
  const std::string two = "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": ";
  // A gap between tensors.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}, " + f32b + "[8, 12]}}", Bytes(12, 1)),
              HasSubstr("tensor 'b' with data_offsets [8, 12] leaves a gap after the end of "
                        "tensor 'a' (4)"));
  // The first tensor not at 0.
  EXPECT_THAT(HeaderError("{" + f32a + "[4, 8]}}", Bytes(8, 1)),
              HasSubstr("leaves a gap after the start of the buffer (0)"));
  // Overlap.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}, " + two + "[2, 10]}}", Bytes(10, 1)),
              HasSubstr("tensor 'b' with data_offsets [2, 10] overlaps the end of tensor 'a' (4)"));
  // Same range twice.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}, " + f32b + "[0, 4]}}", Bytes(4, 1)),
              HasSubstr("overlaps"));
  // End before begin.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}, " + f32b + "[4, 0]}}", Bytes(4, 1)),
              HasSubstr("[4, 0] ends before it begins"));
  // Size disagrees with dtype x shape.
  EXPECT_THAT(HeaderError("{" + two + "[0, 4]}}", Bytes(4, 1)),
              HasSubstr("tensor 'b' with data_offsets [0, 4] spans 4 bytes, but F32 with shape [2] "
                        "takes 8 bytes"));
  // Trailing bytes after the last tensor.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}}", Bytes(6, 1)),
              HasSubstr("cover 4 bytes of the data buffer, but the buffer holds 6 bytes (trailing "
                        "bytes after the last tensor)"));
  // The last tensor runs past the end.
  EXPECT_THAT(HeaderError("{" + f32a + "[0, 4]}}", Bytes(3, 1)),
              HasSubstr("the file is truncated"));
  // No tensors, but a buffer.
  EXPECT_THAT(HeaderError("{}", "x"), HasSubstr("trailing bytes"));
  // Offsets near 2^64 must not wrap.
  EXPECT_THAT(HeaderError("{" + f32a + "[18446744073709551612, 0]}}", ""), HasSubstr("gap"));
}

TEST_F(SafetensorsTest, EveryTruncationIsAnError) {
  SafetensorsWriter w;
  w.AddMetadata("format", "pt");
  w.AddTensor("a", DType::kF32, {2}, Bytes(8, 1));
  w.AddTensor("b", DType::kU8, {3}, Bytes(3, 2));
  const std::string bytes = w.Serialize();
  for (size_t len = 0; len < bytes.size(); ++len) {
    path_ = dir_.File("t" + std::to_string(len) + ".safetensors");
    ASSERT_TRUE(WriteFile(path_, bytes.substr(0, len)).ok());
    absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(path_);
    ASSERT_FALSE(s.ok()) << len;
    ASSERT_THAT(s.status().message(), HasSubstr(path_)) << len;
  }
  ASSERT_TRUE(WriteFile(path_, bytes).ok());
  EXPECT_TRUE(OpenSafetensors(path_).ok());
}

TEST_F(SafetensorsTest, UnalignedHalfTensorReadsAsF32) {
  // A U8 tensor of 1 byte first puts the F16 data at an odd address.
  const std::string halves = std::string("\x00\x3C\x00\xC0\x00\x38", 6);  // 1, -2, 0.5
  const std::string header =
      "{\"pad\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}, "
      "\"h\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [1, 7]}}";
  path_ = dir_.File("odd.safetensors");
  ASSERT_TRUE(WriteFile(path_, FrameSafetensors(header, "\x07" + halves)).ok());
  absl::StatusOr<std::unique_ptr<WeightStore>> s = OpenSafetensors(path_);
  ASSERT_TRUE(s.ok()) << s.status();
  const TensorView* h = (*s)->Find("h");
  ASSERT_NE(h, nullptr);
  std::vector<float> out(3);
  ASSERT_TRUE(ReadAsF32(*h, out.data(), 3).ok());
  EXPECT_THAT(out, ElementsAre(1.0f, -2.0f, 0.5f));
}

}  // namespace
}  // namespace tierserve
