// Robustness of the GGUF parser: malformed, truncated, corrupted and lying
// files must give errors that name the file and the problem, never a crash.
#include "runtime/format/gguf_parser.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/common/dtype.h"
#include "runtime/format/testing/gguf_test_fixture.h"
#include "runtime/format/testing/gguf_writer.h"
#include "runtime/format/testing/test_files.h"

namespace tierserve {
namespace {

using gguf_testing::Bytes;
using ::testing::HasSubstr;
using GgufParserTest = gguf_testing::GgufTest;
using gguf_testing::SmallWriter;
using VT = GgufValue::Type;

TEST_F(GgufParserTest, VersionTwoIsAccepted) {
  GgufWriter w = SmallWriter();
  w.set_version(2);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 2u);
  EXPECT_NE((*f)->Find("tok.weight"), nullptr);
}

TEST_F(GgufParserTest, CustomAlignmentIsHonoured) {
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

TEST_F(GgufParserTest, BadAlignmentIsRejected) {
  for (uint32_t a : {0u, 12u, 4u}) {
    GgufWriter w;
    w.SetAlignment(a);
    EXPECT_THAT(OpenError(w), HasSubstr("general.alignment is " + std::to_string(a) +
                                        "; it must be a non-zero multiple of 8"));
  }
  GgufWriter w;
  w.AddString("general.alignment", "32");
  EXPECT_THAT(OpenError(w), HasSubstr("general.alignment has type string; expected an integer"));
  GgufWriter w2;
  w2.AddI32("general.alignment", -32);
  EXPECT_THAT(OpenError(w2), HasSubstr("general.alignment is -32; it must be"));
  GgufWriter w3;  // a signed type with a fitting value is accepted
  w3.AddI32("general.alignment", 16);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteAndOpen(w3);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 16u);
}

TEST_F(GgufParserTest, EveryTruncationIsAnError) {
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

TEST_F(GgufParserTest, TruncationMessagesSayWhatWasCut) {
  absl::StatusOr<GgufImage> img = SmallWriter().Build();
  ASSERT_TRUE(img.ok());
  EXPECT_THAT(OpenError(""), HasSubstr("truncated file: the magic number"));
  EXPECT_THAT(OpenError(img->bytes.substr(0, 6)), HasSubstr("truncated file: the version field"));
  EXPECT_THAT(OpenError(img->bytes.substr(0, img->data_end - 1)),
              HasSubstr("tensor 'w.weight' (F16) needs 10 bytes"));
}

TEST_F(GgufParserTest, CorruptedBytesNeverEscapeTheFile) {
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

TEST_F(GgufParserTest, OffsetPastTheEndIsRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {4}, Bytes(16, 1));
  w.AddRawTensor("far", 0, {4}, "", uint64_t{1} << 20);
  EXPECT_THAT(OpenError(w), HasSubstr("tensor 'far' (F32) needs 16 bytes at data offset 1048576"));

  // An offset near 2^64 must not wrap around.
  GgufWriter w2;
  w2.AddRawTensor("wrap", 0, {4}, "", std::numeric_limits<uint64_t>::max() - 31);
  EXPECT_THAT(OpenError(w2), HasSubstr("runs past the end of the file"));
}

TEST_F(GgufParserTest, OverlappingTensorsAreRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {16}, Bytes(64, 1), 0);
  w.AddRawTensor("b", 0, {8}, Bytes(32, 2), 32);
  EXPECT_THAT(OpenError(w),
              HasSubstr("tensors 'a' (data offsets [0, 64)) and 'b' ([32, 64)) overlap"));

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

TEST_F(GgufParserTest, MisalignedOffsetIsRejected) {
  GgufWriter w;
  w.AddRawTensor("a", 0, {2}, Bytes(8, 1), 8);
  EXPECT_THAT(OpenError(w),
              HasSubstr("data offset 8, which is not a multiple of the alignment 32"));
}

TEST_F(GgufParserTest, LyingLengthsAndCountsAreRejectedWithoutAllocating) {
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
    EXPECT_THAT(OpenError(s),
                HasSubstr("truncated file: the string value of metadata key 'k' needs "
                          "1152921504606846976 bytes"));
  }
  {
    std::string s = Header(0, 1);
    AppendGgufString(&s, "arr");
    AppendU32(&s, 9);      // array
    AppendU32(&s, 4);      // of u32
    AppendU64(&s, kHuge);  // count
    s += std::string(64, '\0');
    EXPECT_THAT(OpenError(s),
                HasSubstr("metadata key 'arr' claims 1152921504606846976 elements of "
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

TEST_F(GgufParserTest, BadMagicAndVersionsAreRejected) {
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

TEST_F(GgufParserTest, UnsupportedTensorTypesAreNamed) {
  GgufWriter w;
  w.AddRawTensor("blk.0.ffn_up.weight", 9, {32}, Bytes(36, 1));  // Q8_1
  EXPECT_THAT(OpenError(w), HasSubstr("tensor 'blk.0.ffn_up.weight' has ggml type 9 (Q8_1), which "
                                      "is not supported"));
  GgufWriter w2;
  w2.AddRawTensor("t", 200, {32}, Bytes(36, 1));
  EXPECT_THAT(OpenError(w2), HasSubstr("tensor 't' has ggml type 200 (unknown)"));
}

TEST_F(GgufParserTest, MalformedEntriesAreRejected) {
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
    EXPECT_THAT(OpenError(w),
                HasSubstr("metadata key 'deep'[0][0][0][0][0][0][0][0] nests arrays"));
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

TEST_F(GgufParserTest, MissingFileIsNotFound) {
  const std::string path = dir_.File("absent.gguf");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(f.status().message(), HasSubstr(path));
}

}  // namespace
}  // namespace tierserve
