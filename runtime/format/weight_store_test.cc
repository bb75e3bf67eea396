#include "runtime/format/weight_store.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/common/dtype.h"

namespace tierserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A view over `bytes` placed one byte into a buffer, so multi-byte elements
// are misaligned.
struct OddView {
  std::vector<uint8_t> storage;
  TensorView view;
  OddView(DType dtype, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
    storage.assign(bytes.size() + 1, 0xEE);
    std::memcpy(storage.data() + 1, bytes.data(), bytes.size());
    view.name = "w";
    view.file = "weights.bin";
    view.dtype = dtype;
    view.shape = std::move(shape);
    view.data = storage.data() + 1;
    view.nbytes = bytes.size();
  }
};

template <typename T>
std::vector<uint8_t> LeBytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<float> Read(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.NumElements()), -777.0f);
  const absl::Status s = ReadAsF32(t, out.data(), t.NumElements());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(ReadAsF32Test, PlainTypes) {
  EXPECT_THAT(Read(OddView(DType::kF32, {3}, LeBytes<float>({1.5f, -0.0f, 3e38f})).view),
              ElementsAre(1.5f, -0.0f, 3e38f));
  EXPECT_THAT(Read(OddView(DType::kF64, {2}, LeBytes<double>({0.25, -1e10})).view),
              ElementsAre(0.25f, -1e10f));
  EXPECT_THAT(Read(OddView(DType::kF16, {2}, LeBytes<uint16_t>({0x3C00, 0xB800})).view),
              ElementsAre(1.0f, -0.5f));
  EXPECT_THAT(Read(OddView(DType::kBF16, {2}, LeBytes<uint16_t>({0x3F80, 0xC000})).view),
              ElementsAre(1.0f, -2.0f));
  EXPECT_THAT(Read(OddView(DType::kI8, {3}, LeBytes<int8_t>({-128, 0, 127})).view),
              ElementsAre(-128.0f, 0.0f, 127.0f));
  EXPECT_THAT(Read(OddView(DType::kU8, {2}, LeBytes<uint8_t>({0, 255})).view),
              ElementsAre(0.0f, 255.0f));
  EXPECT_THAT(Read(OddView(DType::kI16, {2}, LeBytes<int16_t>({-32768, 1234})).view),
              ElementsAre(-32768.0f, 1234.0f));
  EXPECT_THAT(Read(OddView(DType::kI32, {2, 1}, LeBytes<int32_t>({-7, 16777216})).view),
              ElementsAre(-7.0f, 16777216.0f));
}

TEST(ReadAsF32Test, BlockTypeThroughTheDequantizer) {
  // One Q4_1 block: d = 1, m = -8, element j stored as j % 16.
  std::vector<uint8_t> b(20);
  b[1] = 0x3C;  // d = 1.0
  b[3] = 0xC8;  // m = -8.0
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (j << 4));
  const std::vector<float> y = Read(OddView(DType::kQ4_1, {1, 32}, b).view);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], static_cast<float>(j % 16 - 8)) << j;
}

TEST(ReadAsF32Test, Errors) {
  OddView v(DType::kF32, {2}, LeBytes<float>({1, 2}));
  std::vector<float> out(3);
  absl::Status s = ReadAsF32(v.view, out.data(), 3);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              HasSubstr("weights.bin: tensor 'w' (F32) has 2 elements but the output holds 3"));

  v.view.nbytes = 7;
  s = ReadAsF32(v.view, out.data(), 2);
  EXPECT_THAT(s.message(), HasSubstr("has 2 elements in 7 bytes"));

  OddView q(DType::kQ8_0, {31}, std::vector<uint8_t>(34));
  s = ReadAsF32(q.view, out.data(), 31);
  EXPECT_THAT(s.message(), HasSubstr("does not match its dtype"));

  OddView b(DType::kBool, {2}, {1, 0});
  s = ReadAsF32(b.view, out.data(), 2);
  EXPECT_THAT(s.message(), HasSubstr("(BOOL) cannot be read as fp32"));
  OddView l(DType::kI64, {1}, LeBytes<int64_t>({5}));
  EXPECT_FALSE(ReadAsF32(l.view, out.data(), 1).ok());
}

}  // namespace
}  // namespace tierserve
