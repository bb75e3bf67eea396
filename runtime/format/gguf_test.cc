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
#include "runtime/base/dtype.h"
#include "runtime/format/testing/gguf_writer.h"
#include "runtime/format/testing/test_files.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using VT = GgufValue::Type;

// Deterministic filler bytes, different per tensor.
std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed * 17 + 5) & 0xFF);
  return s;
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  // Writes `w` and opens the result.
  absl::StatusOr<std::unique_ptr<GgufFile>> WriteAndOpen(const GgufWriter& w) {
    path_ = dir_.File("model.gguf");
    absl::Status s = w.WriteTo(path_);
    if (!s.ok()) return s;
    return GgufFile::Open(path_);
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> WriteAndOpen(const std::string& bytes) {
    path_ = dir_.File("model.gguf");
    absl::Status s = WriteFile(path_, bytes);
    if (!s.ok()) return s;
    return GgufFile::Open(path_);
  }
  // Opens `bytes` expecting failure; returns the message, which must name the file.
  std::string OpenError(const std::string& bytes) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(bytes);
    EXPECT_FALSE(f.ok()) << "expected an error";
    if (f.ok()) return "";
    EXPECT_THAT(f.status().message(), HasSubstr(path_));
    return std::string(f.status().message());
  }
  std::string OpenError(const GgufWriter& w) {
    absl::StatusOr<GgufImage> img = w.Build();
    EXPECT_TRUE(img.ok()) << img.status();
    return img.ok() ? OpenError(img->bytes) : "";
  }

  // A header: magic, version, counts. Entries follow.
  static std::string Header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    std::string s = "GGUF";
    AppendU32(&s, version);
    AppendU64(&s, tensors);
    AppendU64(&s, kvs);
    return s;
  }

  ScopedTempDir dir_;
  std::string path_;
};

// A small valid file with metadata and three tensors, the last one ending
// off the alignment so the file has trailing padding.
GgufWriter SmallWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 2);
  w.AddF32Array("scores", {0.5f, -1.0f});
  w.AddStringArray("tokens", {"a", "bc"});
  w.AddTensor("tok.weight", DType::kQ8_0, {2, 32}, Bytes(68, 1));
  w.AddTensor("norm.weight", DType::kF32, {3}, Bytes(12, 2));
  w.AddTensor("w.weight", DType::kF16, {5}, Bytes(10, 3));
  return w;
}

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
      {"f32", DType::kF32, {3, 5}},        {"f16", DType::kF16, {7}},
      {"bf16", DType::kBF16, {2, 3}},      {"f64", DType::kF64, {2}},
      {"i8", DType::kI8, {9}},             {"i16", DType::kI16, {4, 1}},
      {"i32", DType::kI32, {3}},           {"i64", DType::kI64, {2, 2}},
      {"q8_0", DType::kQ8_0, {3, 64}},     {"q4_0", DType::kQ4_0, {2, 32}},
      {"q4_1", DType::kQ4_1, {1, 2, 32}},  {"q5_0", DType::kQ5_0, {32}},
      {"q5_1", DType::kQ5_1, {2, 1, 1, 32}}, {"q4_k", DType::kQ4_K, {2, 256}},
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

TEST_F(GgufTest, VersionTwoIsAccepted) {
  GgufWriter w = SmallWriter();
  w.set_version(2);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 2u);
  EXPECT_NE((*f)->Find("tok.weight"), nullptr);
}

TEST_F(GgufTest, CustomAlignmentIsHonoured) {
  for (uint32_t a : {8u, 64u, 4096u}) {
    SCOPED_TRACE(a);
    GgufWriter w;
    w.SetAlignment(a);
    w.AddTensor("a", DType::kF32, {3}, Bytes(12, 1));
    w.AddTensor("b", DType::kI8, {5}, Bytes(5, 2));
    w.AddTensor("c", DType::kI8, {1}, Bytes(1, 3));
    absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->alignment(), a);
    EXPECT_EQ((*f)->data_offset() % a, 0u);
    const TensorView* ta = (*f)->Find("a");
    const TensorView* tb = (*f)->Find("b");
    const TensorView* tc = (*f)->Find("c");
    EXPECT_EQ(tb->data - ta->data, static_cast<std::ptrdiff_t>(std::max<uint32_t>(a, 16)));
    EXPECT_EQ((tc->data - ta->data) % a, 0);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(tc->data), 1), Bytes(1, 3));
  }
}

TEST_F(GgufTest, BadAlignmentIsRejected) {
  for (uint32_t a : {0u, 12u, 4u}) {
    GgufWriter w;
    w.SetAlignment(a);
    EXPECT_THAT(OpenError(w), HasSubstr("general.alignment is " + std::to_string(a) +
                                        "; it must be a non-zero multiple of 8"));
  }
  GgufWriter w;
  w.AddString("general.alignment", "32");
  EXPECT_THAT(OpenError(w), HasSubstr("general.alignment has type string"));
}

TEST_F(GgufTest, EveryTruncationIsAnError) {
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok());
  ASSERT_LT(img->data_end, img->bytes.size()) << "the file should end in padding";
  for (size_t len = 0; len < img->data_end; ++len) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(img->bytes.substr(0, len));
    ASSERT_FALSE(f.ok()) << "prefix of " << len << " bytes opened";
    ASSERT_THAT(f.status().message(), HasSubstr(path_)) << len;
  }
  // Cutting only the final padding leaves every tensor intact.
  for (size_t len = img->data_end; len <= img->bytes.size(); ++len) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(img->bytes.substr(0, len));
    ASSERT_TRUE(f.ok()) << len << ": " << f.status();
  }
}

TEST_F(GgufTest, TruncationMessagesSayWhatWasCut) {
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok());
  EXPECT_THAT(OpenError(""), HasSubstr("truncated file: the magic number"));
  EXPECT_THAT(OpenError(img->bytes.substr(0, 6)), HasSubstr("truncated file: the version field"));
  EXPECT_THAT(OpenError(img->bytes.substr(0, img->data_end - 1)),
              HasSubstr("tensor 'w.weight' (F16) needs 10 bytes"));
}

TEST_F(GgufTest, CorruptedBytesNeverEscapeTheFile) {
  // Flip each byte of a small file in three ways. Whatever opens must keep
  // every tensor inside the data section and apart from the others; reading
  // all tensor bytes must not fault.
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok());
  int opened = 0;
  for (size_t i = 0; i < img->bytes.size(); ++i) {
    for (uint8_t mask : {0xFF, 0x80, 0x01}) {
      std::string bytes = img->bytes;
      bytes[i] = static_cast<char>(bytes[i] ^ mask);
      absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(bytes);
      if (!f.ok()) {
        ASSERT_THAT(f.status().message(), HasSubstr(path_));
        continue;
      }
      ++opened;
      const GgufFile& g = **f;
      const uint64_t section = bytes.size() - g.data_offset();
      std::vector<const TensorView*> ts;
      for (const std::string& n : g.Names()) ts.push_back(g.Find(n));
      std::sort(ts.begin(), ts.end(), [](auto* a, auto* b) { return a->data < b->data; });
      uint64_t sum = 0;
      for (size_t k = 0; k < ts.size(); ++k) {
        ASSERT_LE(static_cast<uint64_t>(ts[k]->data + ts[k]->nbytes - ts[0]->data), section);
        if (k > 0 && ts[k - 1]->nbytes > 0) {
          ASSERT_GE(ts[k]->data, ts[k - 1]->data + ts[k - 1]->nbytes);
        }
        for (uint64_t b = 0; b < ts[k]->nbytes; ++b) sum += ts[k]->data[b];
      }
      (void)sum;
    }
  }
  // Flips inside tensor data or metadata strings leave the file valid.
  EXPECT_GT(opened, 100);
}

TEST_F(GgufTest, OffsetPastTheEndIsRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {4}, Bytes(16, 1));
  w.AddRawTensor("far", 0, {4}, "", uint64_t{1} << 20);
  EXPECT_THAT(OpenError(w), HasSubstr("tensor 'far' (F32) needs 16 bytes at data offset 1048576"));

  // An offset near 2^64 must not wrap around.
  GgufWriter w2;
  w2.AddRawTensor("wrap", 0, {4}, "", std::numeric_limits<uint64_t>::max() - 31);
  EXPECT_THAT(OpenError(w2), HasSubstr("runs past the end of the file"));
}

TEST_F(GgufTest, OverlappingTensorsAreRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {16}, Bytes(64, 1), 0);
  w.AddRawTensor("b", 0, {8}, Bytes(32, 2), 32);
  EXPECT_THAT(OpenError(w), HasSubstr("tensors 'a' (data offsets [0, 64)) and 'b' ([32, 64)) overlap"));

  // Same start, listed in the other order.
  GgufWriter w2;
  w2.AddRawTensor("x", 0, {8}, Bytes(32, 1), 0);
  w2.AddRawTensor("y", 0, {8}, Bytes(32, 2), 0);
  EXPECT_THAT(OpenError(w2), HasSubstr("overlap"));

  // Empty tensors share offsets freely.
  GgufWriter w3;
  w3.AddRawTensor("e1", 0, {0}, "", 0);
  w3.AddRawTensor("e2", 0, {0, 3}, "", 0);
  w3.AddRawTensor("full", 0, {2}, Bytes(8, 3), 0);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w3);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->Find("e2")->shape, (std::vector<int64_t>{3, 0}));
  EXPECT_EQ((*f)->Find("e2")->nbytes, 0u);
}

TEST_F(GgufTest, MisalignedOffsetIsRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {2}, Bytes(8, 1), 8);
  EXPECT_THAT(OpenError(w), HasSubstr("data offset 8, which is not a multiple of the alignment 32"));
}

TEST_F(GgufTest, LyingLengthsAndCountsAreRejectedWithoutAllocating) {
  constexpr uint64_t kHuge = uint64_t{1} << 60;
  {
    std::string s = Header(0, 1);
    AppendU64(&s, kHuge);  // key length
    s += std::string(32, 'k');
    EXPECT_THAT(OpenError(s), HasSubstr("the key of metadata entry 0 is 1152921504606846976 bytes "
                                        "long; at most 65535 are allowed"));
  }
  {
    std::string s = Header(0, 1);
    AppendGgufString(&s, "k");
    AppendU32(&s, 8);      // string
    AppendU64(&s, kHuge);  // its length
    s += "abc";
    EXPECT_THAT(OpenError(s), HasSubstr("truncated file: the string value of metadata key 'k' needs "
                                        "1152921504606846976 bytes"));
  }
  {
    std::string s = Header(0, 1);
    AppendGgufString(&s, "arr");
    AppendU32(&s, 9);      // array
    AppendU32(&s, 4);      // of u32
    AppendU64(&s, kHuge);  // count
    s += std::string(64, '\0');
    EXPECT_THAT(OpenError(s), HasSubstr("metadata key 'arr' claims 1152921504606846976 elements of "
                                        "type u32 (at least 4 bytes each) but only 64 bytes follow"));
  }
  {
    // A plausible-looking count that the file could hold but the value budget cannot.
    std::string s = Header(0, 1);
    AppendGgufString(&s, "arr");
    AppendU32(&s, 9);
    AppendU32(&s, 0);  // of u8
    AppendU64(&s, uint64_t{1} << 24);
    s += std::string((size_t{1} << 24), '\0');
    EXPECT_THAT(OpenError(s), HasSubstr("more than this reader's limit"));
  }
  EXPECT_THAT(OpenError(Header(kHuge, 0) + std::string(100, '\0')),
              HasSubstr("tensor count 1152921504606846976 is impossible"));
  EXPECT_THAT(OpenError(Header(0, kHuge) + std::string(100, '\0')),
              HasSubstr("metadata count 1152921504606846976 is impossible"));
  {
    std::string s = Header(1, 0);
    AppendU64(&s, kHuge);  // tensor name length
    s += std::string(40, '\0');
    EXPECT_THAT(OpenError(s), HasSubstr("the name of tensor 0 is 1152921504606846976 bytes long"));
  }
}

TEST_F(GgufTest, BadMagicAndVersionsAreRejected) {
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok());
  std::string bad = img->bytes;
  bad[0] = 'X';
  EXPECT_THAT(OpenError(bad), HasSubstr("not a GGUF file: it starts with bytes 58 47 55 46"));

  auto with_version = [&](uint32_t v) {
    std::string s = img->bytes;
    std::string field;
    AppendU32(&field, v);
    s.replace(4, 4, field);
    return s;
  };
  EXPECT_THAT(OpenError(with_version(1)), HasSubstr("GGUF version 1 is not supported"));
  EXPECT_THAT(OpenError(with_version(4)), HasSubstr("unsupported GGUF version 4"));
  EXPECT_THAT(OpenError(with_version(0x03000000)), HasSubstr("version 3 byte-swapped"));
  EXPECT_THAT(OpenError(with_version(0x03000000)), HasSubstr("big-endian"));
  std::string fugg = img->bytes;
  fugg.replace(0, 4, "FUGG");
  EXPECT_THAT(OpenError(fugg), HasSubstr("big-endian"));

  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(with_version(1));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kUnimplemented);
}

TEST_F(GgufTest, UnsupportedTensorTypesAreNamed) {
  GgufWriter w;
  w.AddRawTensor("blk.0.ffn_up.weight", 9, {32}, Bytes(36, 1));  // Q8_1
  EXPECT_THAT(OpenError(w), HasSubstr("tensor 'blk.0.ffn_up.weight' has ggml type 9 (Q8_1), which "
                                      "is not supported"));
  GgufWriter w2;
  w2.AddRawTensor("t", 200, {32}, Bytes(36, 1));
  EXPECT_THAT(OpenError(w2), HasSubstr("tensor 't' has ggml type 200 (unknown)"));
}

TEST_F(GgufTest, MalformedEntriesAreRejected) {
  {
    GgufWriter w;
    w.AddU32("k", 1);
    w.AddU32("k", 2);
    EXPECT_THAT(OpenError(w), HasSubstr("metadata key 'k' appears twice"));
  }
  {
    GgufWriter w;
    w.AddTensor("t", DType::kF32, {1}, Bytes(4, 1));
    w.AddTensor("t", DType::kF32, {1}, Bytes(4, 2));
    EXPECT_THAT(OpenError(w), HasSubstr("tensor name 't' appears twice"));
  }
  {
    GgufWriter w;
    w.AddRawTensor("t5", 0, {1, 1, 1, 1, 1}, Bytes(4, 1));
    EXPECT_THAT(OpenError(w), HasSubstr("tensor 't5' has 5 dimensions; at most 4 are allowed"));
  }
  {
    GgufWriter w;
    w.AddRawTensor("q", 2, {33, 1}, Bytes(36, 1));  // Q4_0 needs ne0 % 32 == 0
    EXPECT_THAT(OpenError(w), HasSubstr("tensor 'q' (Q4_0) has first ggml dimension 33, which is "
                                        "not a multiple of the block size 32"));
  }
  {
    GgufWriter w;
    w.AddRawTensor("huge", 0, {uint64_t{1} << 62, uint64_t{1} << 62}, "");
    EXPECT_THAT(OpenError(w), HasSubstr("whose size overflows 64 bits"));
  }
  {
    // Zero in the first ggml dim, overflow in the rest: still rejected, since
    // the PyTorch-order element count would overflow on the way.
    GgufWriter w;
    w.AddRawTensor("zero_huge", 0, {0, uint64_t{1} << 40, uint64_t{1} << 40}, "");
    EXPECT_THAT(OpenError(w), HasSubstr("overflows"));
  }
  {
    GgufWriter w;
    w.AddRawTensor(std::string(65, 'n'), 0, {1}, Bytes(4, 1));
    EXPECT_THAT(OpenError(w), HasSubstr("is 65 bytes long; at most 64 are allowed"));
  }
  {
    GgufWriter w;
    w.AddRawKv("flag", 7, std::string(1, '\x02'));
    EXPECT_THAT(OpenError(w), HasSubstr("metadata key 'flag' is a bool stored as 2"));
  }
  {
    GgufWriter w;
    w.AddRawKv("odd", 13, "");
    EXPECT_THAT(OpenError(w), HasSubstr("metadata key 'odd' has unknown value type 13"));
  }
  {
    GgufWriter w;
    w.AddU8("", 1);
    EXPECT_THAT(OpenError(w), HasSubstr("metadata entry 0 has an empty key"));
  }
  {
    // Arrays nested nine deep.
    GgufValue v{VT::kU8, uint64_t{1}};
    for (int i = 0; i < 9; ++i) v = GgufValue{VT::kArray, GgufArray{v}};
    GgufWriter w;
    w.AddValue("deep", v);
    EXPECT_THAT(OpenError(w), HasSubstr("metadata key 'deep'[0][0][0][0][0][0][0][0] nests arrays"));
  }
  {
    // Truncated inside an array element: the message gives the index.
    GgufWriter w;
    w.AddStringArray("tokens", {"a", "b", "c"});
    absl::StatusOr<GgufImage> img = w.Build();
    ASSERT_TRUE(img.ok());
    const size_t cut = img->bytes.rfind('c');
    EXPECT_THAT(OpenError(img->bytes.substr(0, cut)),
                HasSubstr("the string value of metadata key 'tokens'[2] needs 1 bytes"));
  }
}

TEST_F(GgufTest, MissingFileIsNotFound) {
  const std::string path = dir_.File("absent.gguf");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(f.status().message(), HasSubstr(path));
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
