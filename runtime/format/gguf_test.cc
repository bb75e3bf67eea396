#include "runtime/format/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/common/dtype.h"
#include "runtime/format/testing/gguf_test_fixture.h"
#include "runtime/format/testing/gguf_writer.h"
#include "runtime/format/testing/test_files.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

using gguf_testing::Bytes;
using gguf_testing::GgufTest;
using gguf_testing::SmallWriter;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using VT = GgufValue::Type;

TEST_F(GgufTest, MetadataOfEveryTypeRoundTrips) {
  GgufWriter w;
  w.AddU8("u8", 200);
  w.AddI8("i8", -100);
  w.AddU16("u16", 60000);
  w.AddI16("i16", -30000);
  w.AddU32("u32", 4000000000u);
  w.AddI32("i32", -2000000000);
  w.AddU64("u64", std::numeric_limits<uint64_t>::max());
  w.AddI64("i64", std::numeric_limits<int64_t>::min());
  w.AddF32("f32", 0.25f);
  w.AddF64("f64", -1e300);
  w.AddBool("yes", true);
  w.AddBool("no", false);
  w.AddString("str", "héllo wörld");
  w.AddString("empty_str", "");
  w.AddStringArray("strs", {"a", "", "ccc"});
  w.AddF32Array("floats", {1.5f, -2.0f});
  w.AddI32Array("ints", {-1, 7});
  w.AddValue("u16s", {VT::kArray, GgufArray{{VT::kU16, uint64_t{1}}, {VT::kU16, uint64_t{65535}}}});
  w.AddValue("empty_array", {VT::kArray, GgufArray{}});
  // [[1, 2], [3]] as u8, and [["x"]]
  GgufArray inner1{{VT::kU8, uint64_t{1}}, {VT::kU8, uint64_t{2}}};
  GgufArray inner2{{VT::kU8, uint64_t{3}}};
  w.AddValue("nested", {VT::kArray, GgufArray{{VT::kArray, inner1}, {VT::kArray, inner2}}});

  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.metadata().size(), 20u);
  EXPECT_TRUE(g.Names().empty());

  EXPECT_EQ(*g.GetUint("u8"), 200u);
  EXPECT_EQ(*g.GetInt("i8"), -100);
  EXPECT_EQ(*g.GetUint("u16"), 60000u);
  EXPECT_EQ(*g.GetInt("i16"), -30000);
  EXPECT_EQ(*g.GetUint("u32"), 4000000000u);
  EXPECT_EQ(*g.GetInt("u32"), 4000000000);  // any integer type that fits
  EXPECT_EQ(*g.GetInt("i32"), -2000000000);
  EXPECT_EQ(*g.GetUint("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*g.GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*g.GetFloat("f32"), 0.25);
  EXPECT_EQ(*g.GetFloat("f64"), -1e300);
  EXPECT_TRUE(*g.GetBool("yes"));
  EXPECT_FALSE(*g.GetBool("no"));
  EXPECT_EQ(*g.GetString("str"), "héllo wörld");
  EXPECT_EQ(*g.GetString("empty_str"), "");
  EXPECT_THAT(*g.GetStringArray("strs"), ElementsAre("a", "", "ccc"));
  EXPECT_THAT(*g.GetFloatArray("floats"), ElementsAre(1.5f, -2.0f));
  EXPECT_THAT(*g.GetIntArray("ints"), ElementsAre(-1, 7));
  EXPECT_THAT(*g.GetIntArray("u16s"), ElementsAre(1, 65535));
  EXPECT_TRUE(g.GetIntArray("empty_array")->empty());

  // Declared types are kept.
  EXPECT_EQ(g.metadata().at("u16").type, VT::kU16);
  EXPECT_EQ(g.metadata().at("f32").type, VT::kF32);
  const GgufValue& nested = g.metadata().at("nested");
  ASSERT_EQ(nested.type, VT::kArray);
  const auto& outer = std::get<GgufArray>(nested.value);
  ASSERT_EQ(outer.size(), 2u);
  ASSERT_EQ(outer[0].type, VT::kArray);
  const auto& first = std::get<GgufArray>(outer[0].value);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].type, VT::kU8);
  EXPECT_EQ(std::get<uint64_t>(first[1].value), 2u);
  EXPECT_EQ(std::get<GgufArray>(outer[1].value).size(), 1u);
}

TEST_F(GgufTest, AccessorErrorsNameKeyAndTypes) {
  GgufWriter w;
  w.AddU32("n", 5);
  w.AddI32("neg", -3);
  w.AddU64("big", std::numeric_limits<uint64_t>::max());
  w.AddString("s", "x");
  w.AddI32Array("ints", {1});
  ASSERT_TRUE(WriteAndOpen(w).ok());
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path_);
  ASSERT_TRUE(f.ok());
  const GgufFile& g = **f;

  absl::StatusOr<double> fl = g.GetFloat("n");
  ASSERT_FALSE(fl.ok());
  EXPECT_THAT(fl.status().message(), HasSubstr("'n' has type u32; expected f32 or f64"));
  EXPECT_THAT(fl.status().message(), HasSubstr(path_));

  absl::StatusOr<uint64_t> u = g.GetUint("neg");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(u.status().message(), HasSubstr("holds -3"));

  EXPECT_EQ(g.GetInt("big").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(g.GetString("n").status().message(), HasSubstr("expected string"));
  EXPECT_THAT(g.GetStringArray("ints").status().message(),
              HasSubstr("'ints' has type array of i32; expected array of string"));
  EXPECT_THAT(g.GetIntArray("s").status().message(), HasSubstr("expected array of integers"));
  EXPECT_THAT(g.GetBool("s").status().message(), HasSubstr("expected bool"));

  absl::StatusOr<std::string> absent = g.GetString("nope");
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(absent.status().message(), HasSubstr("'nope' is absent"));
  EXPECT_TRUE(g.Has("n"));
  EXPECT_FALSE(g.Has("nope"));
}

TEST_F(GgufTest, TensorsOfEveryTypeRoundTrip) {
  struct Case {
    const char* name;
    DType dtype;
    std::vector<int64_t> shape;  // PyTorch order
  };
  const std::vector<Case> cases = {
      {"f32", DType::kF32, {3, 5}},
      {"f16", DType::kF16, {7}},
      {"bf16", DType::kBF16, {2, 3}},
      {"f64", DType::kF64, {2}},
      {"i8", DType::kI8, {9}},
      {"i16", DType::kI16, {4, 1}},
      {"i32", DType::kI32, {3}},
      {"i64", DType::kI64, {2, 2}},
      {"q8_0", DType::kQ8_0, {3, 64}},
      {"q4_0", DType::kQ4_0, {2, 32}},
      {"q4_1", DType::kQ4_1, {1, 2, 32}},
      {"q5_0", DType::kQ5_0, {32}},
      {"q5_1", DType::kQ5_1, {2, 1, 1, 32}},
      {"q4_k", DType::kQ4_K, {2, 256}},
      {"q6_k", DType::kQ6_K, {1, 512}},
  };
  GgufWriter w;
  w.AddString("general.name", "every type");
  std::vector<std::string> contents;
  for (size_t i = 0; i < cases.size(); ++i) {
    int64_t elems = 1;
    for (int64_t d : cases[i].shape) elems *= d;
    const int64_t nbytes = elems / BlockElems(cases[i].dtype) * BlockBytes(cases[i].dtype);
    contents.push_back(Bytes(static_cast<size_t>(nbytes), static_cast<uint8_t>(i)));
    w.AddTensor(cases[i].name, cases[i].dtype, cases[i].shape, contents.back());
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.Source(), path_);
  const std::vector<std::string> names = g.Names();
  EXPECT_EQ(names.size(), cases.size());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  const uint8_t* first = g.Find(cases[0].name)->data;
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const TensorView* t = g.Find(cases[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name, cases[i].name);
    EXPECT_EQ(t->dtype, cases[i].dtype);
    EXPECT_EQ(t->shape, cases[i].shape);
    EXPECT_EQ(t->file, path_);
    ASSERT_EQ(t->nbytes, contents[i].size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t->data), t->nbytes), contents[i]);
    // Data sits at multiples of the alignment within the data section.
    EXPECT_EQ((t->data - first) % 32, 0);
  }
  EXPECT_EQ(g.Find("missing"), nullptr);
}

TEST_F(GgufTest, QuantizedTensorReadsAsF32) {
  // One Q8_0 block: d = 0.5, q[j] = j - 16.
  std::string block(34, '\0');
  block[0] = 0x00;
  block[1] = 0x38;
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<char>(j - 16);
  GgufWriter w;
  w.AddTensor("q", DType::kQ8_0, {1, 32}, block);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<float> out(32);
  ASSERT_TRUE(ReadAsF32(*(*f)->Find("q"), out.data(), 32).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], (j - 16) * 0.5f);
}

// The default model, when fetched (scripts/fetch_model.sh).
TEST_F(GgufTest, FromBytesReadsTheImageInPlace) {
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok()) << img.status();
  const std::string& bytes = img->bytes;
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::FromBytes(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "mem");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->Source(), "mem");
  EXPECT_EQ((*f)->GetUint("llama.block_count").value(), 2u);
  const TensorView* t = (*f)->Find("norm.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_GE(reinterpret_cast<const char*>(t->data), bytes.data() + img->data_offset);
  EXPECT_LE(reinterpret_cast<const char*>(t->data) + t->nbytes, bytes.data() + bytes.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t->data), 12), Bytes(12, 2));
  // Errors name the source as they name a path.
  absl::StatusOr<std::unique_ptr<GgufFile>> cut = GgufFile::FromBytes(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), 20), "mem");
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().message().substr(0, 5), "mem: ");
}

TEST(GgufModelTest, SmolLM2Q4_1) {
  const std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (FILE* probe = fopen(path.c_str(), "rb")) {
    fclose(probe);
  } else {
    GTEST_SKIP() << path << " is absent; run scripts/fetch_model.sh to test against it";
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetUint("llama.block_count"), 30u);
  EXPECT_EQ(*g.GetUint("llama.embedding_length"), 576u);
  EXPECT_EQ(*g.GetUint("llama.attention.head_count"), 9u);
  EXPECT_EQ(*g.GetUint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(*g.GetString("tokenizer.ggml.model"), "gpt2");

  const std::vector<std::string> names = g.Names();
  std::printf("SmolLM2 GGUF: %zu tensors, %zu metadata keys, data at offset %llu\n", names.size(),
              g.metadata().size(), static_cast<unsigned long long>(g.data_offset()));
  // 30 blocks x 9 tensors (2 norms, q/k/v/o, gate/up/down) + token_embd + output_norm.
  EXPECT_EQ(names.size(), 30u * 9 + 2);
  int q4_1 = 0, f32 = 0, other = 0;
  for (const std::string& n : names) {
    const DType t = g.Find(n)->dtype;
    (t == DType::kQ4_1 ? q4_1 : t == DType::kF32 ? f32 : other)++;
  }
  EXPECT_EQ(q4_1, 210);
  EXPECT_EQ(f32, 61);   // 2 norms per block + output_norm
  EXPECT_EQ(other, 1);  // token_embd
  EXPECT_EQ(g.Find("output.weight"), nullptr);

  const TensorView* emb = g.Find("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kQ8_0);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{49152, 576}));
  const TensorView* q = g.Find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{576, 576}));
  EXPECT_EQ(g.Find("blk.0.attn_k.weight")->shape, (std::vector<int64_t>{192, 576}));
  EXPECT_EQ(g.Find("blk.29.ffn_down.weight")->shape, (std::vector<int64_t>{576, 1536}));

  // Dequantized weights are finite and not degenerate.
  std::vector<float> w(static_cast<size_t>(q->NumElements()));
  ASSERT_TRUE(ReadAsF32(*q, w.data(), q->NumElements()).ok());
  double sq = 0;
  for (float v : w) {
    ASSERT_TRUE(std::isfinite(v));
    sq += double{v} * v;
  }
  const double rms = std::sqrt(sq / static_cast<double>(w.size()));
  EXPECT_GT(rms, 1e-3);
  EXPECT_LT(rms, 10.0);
  std::vector<float> row(576);
  DequantizeRowF32(DType::kQ8_0, emb->data, row.data(), 576);  // token 0's embedding
  for (float v : row) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace tierserve
