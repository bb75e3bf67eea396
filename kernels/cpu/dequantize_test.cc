// Dequantization is checked against blocks built by hand, with expected values
// worked out in the test from the format's definition (not by the code under
// test). All chosen scales are powers of two or small integers, so every
// expected value is exact in fp32 and comparisons are exact.
#include "kernels/cpu/dequantize.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/gguf_blocks.h"
#include "kernels/common/half.h"
#include "kernels/cpu/quantize.h"
#include "kernels/common/dtype.h"

namespace tierserve {
namespace {

// fp16 bit patterns of exact values.
constexpr uint16_t kHalfOne = 0x3C00;       // 1.0
constexpr uint16_t kHalfHalf = 0x3800;      // 0.5
constexpr uint16_t kHalfQuarter = 0x3400;   // 0.25
constexpr uint16_t kHalfEighth = 0x3000;    // 0.125
constexpr uint16_t kHalfTwo = 0x4000;       // 2.0
constexpr uint16_t kHalfMinusOne = 0xBC00;  // -1.0

void PutHalf(uint8_t* p, uint16_t h) {
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> Dequantize(DType type, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), -12345.0f);
  DequantizeRowF32(type, bytes.data(), out.data(), n);
  return out;
}

TEST(DequantizeTest, Q8_0HandBuiltBlock) {
  std::vector<uint8_t> b(34);
  PutHalf(b.data(), kHalfHalf);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  b[2 + 30] = static_cast<uint8_t>(int8_t{-128});
  b[2 + 31] = 127;
  const std::vector<float> y = Dequantize(DType::kQ8_0, b, 32);
  for (int j = 0; j < 30; ++j) EXPECT_EQ(y[j], (j - 16) * 0.5f) << j;
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[30], -64.0f);
  EXPECT_EQ(y[31], 63.5f);
}

TEST(DequantizeTest, Q4_0HandBuiltBlock) {
  // Byte j holds element j in its low nibble and element j+16 in its high one.
  std::vector<uint8_t> b(18);
  PutHalf(b.data(), kHalfQuarter);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequantize(DType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.25f) << j;
    EXPECT_EQ(y[j + 16], (7 - j) * 0.25f) << j;
  }
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[15], 1.75f);
  EXPECT_EQ(y[16], 1.75f);
  EXPECT_EQ(y[31], -2.0f);
}

TEST(DequantizeTest, Q4_1HandBuiltBlock) {
  std::vector<uint8_t> b(20);
  PutHalf(b.data(), kHalfHalf);
  PutHalf(b.data() + 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequantize(DType::kQ4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.5f - 1.0f) << j;
    EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 1.0f) << j;
  }
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[15], 6.5f);
  EXPECT_EQ(y[31], -1.0f);
}

// Q5 blocks: nibbles as in Q4_0, and bit e of the little-endian u32 qh is the
// fifth bit of element e.
constexpr uint32_t kQh = 0xAAAA5555u;
int Q5Value(const uint8_t* qs, int e) {
  const int low = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
  return low + 16 * static_cast<int>((kQh >> e) & 1u);
}

TEST(DequantizeTest, Q5_0HandBuiltBlock) {
  std::vector<uint8_t> b(22);
  PutHalf(b.data(), kHalfOne);
  b[2] = 0x55;
  b[3] = 0x55;
  b[4] = 0xAA;
  b[5] = 0xAA;  // kQh, little-endian
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequantize(DType::kQ5_0, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], static_cast<float>(Q5Value(&b[6], e) - 16)) << e;
  EXPECT_EQ(y[0], 0.0f);    // low 0, bit 0 set: 16 - 16
  EXPECT_EQ(y[1], -15.0f);  // low 1, bit 1 clear
  EXPECT_EQ(y[16], -1.0f);  // low 15 (high nibble of byte 0), bit 16 clear
  EXPECT_EQ(y[17], 14.0f);  // low 14 (high nibble of byte 1), bit 17 set: 30 - 16
  EXPECT_EQ(y[31], 0.0f);   // low 0, bit 31 set: 16 - 16
}

TEST(DequantizeTest, Q5_1HandBuiltBlock) {
  std::vector<uint8_t> b(24);
  PutHalf(b.data(), kHalfHalf);
  PutHalf(b.data() + 2, kHalfTwo);
  b[4] = 0x55;
  b[5] = 0x55;
  b[6] = 0xAA;
  b[7] = 0xAA;
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequantize(DType::kQ5_1, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], Q5Value(&b[8], e) * 0.5f + 2.0f) << e;
  EXPECT_EQ(y[0], 10.0f);  // (0 + 16) * 0.5 + 2
  EXPECT_EQ(y[1], 2.5f);   // 1 * 0.5 + 2
}

// Q4_K: eight sub-blocks of 32 with a 6-bit scale and min each.
constexpr int kQ4KScale[8] = {1, 5, 17, 33, 63, 40, 21, 50};
constexpr int kQ4KMin[8] = {0, 3, 62, 7, 48, 19, 36, 11};
int Q4KQuant(int e) { return (e * 7 + 3) % 16; }

std::vector<uint8_t> BuildQ4KBlock() {
  std::vector<uint8_t> b(144, 0);
  PutHalf(b.data(), kHalfHalf);         // d
  PutHalf(b.data() + 2, kHalfQuarter);  // dmin
  uint8_t* sc = b.data() + 4;
  // Bytes 0-3: scales 0-3 (6 bits) + top 2 bits of scales 4-7.
  // Bytes 4-7: mins 0-3 (6 bits) + top 2 bits of mins 4-7.
  // Bytes 8-11: low nibbles of scales 4-7 | low nibbles of mins 4-7 << 4.
  for (int j = 0; j < 4; ++j) {
    sc[j] = static_cast<uint8_t>(kQ4KScale[j] | ((kQ4KScale[j + 4] >> 4) << 6));
    sc[j + 4] = static_cast<uint8_t>(kQ4KMin[j] | ((kQ4KMin[j + 4] >> 4) << 6));
    sc[j + 8] = static_cast<uint8_t>((kQ4KScale[j + 4] & 0xF) | ((kQ4KMin[j + 4] & 0xF) << 4));
  }
  uint8_t* qs = b.data() + 16;
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    const int byte = 32 * (s / 2) + e % 32;
    qs[byte] |= static_cast<uint8_t>(s % 2 == 0 ? Q4KQuant(e) : Q4KQuant(e) << 4);
  }
  return b;
}

TEST(DequantizeTest, Q4_KHandBuiltBlock) {
  const std::vector<float> y = Dequantize(DType::kQ4_K, BuildQ4KBlock(), 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    EXPECT_EQ(y[e], 0.5f * kQ4KScale[s] * Q4KQuant(e) - 0.25f * kQ4KMin[s]) << e;
  }
  EXPECT_EQ(y[0], 1.5f);       // 0.5*1*3 - 0
  EXPECT_EQ(y[128], 82.5f);    // sub-block 4: 0.5*63*3 - 0.25*48
  EXPECT_EQ(y[255], 297.25f);  // sub-block 7: 0.5*50*12 - 0.25*11
}

// Q6_K: 6-bit quants, a signed 8-bit scale per 16 elements.
int Q6KQuant(int e) { return (e * 5 + 1) % 64; }
int Q6KScale(int i) { return i % 2 == 0 ? i + 1 : -(i + 1); }

std::vector<uint8_t> BuildQ6KBlock() {
  std::vector<uint8_t> b(210, 0);
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int q = Q6KQuant(e);
    ql[64 * h + l + 32 * (k % 2)] |= static_cast<uint8_t>(k < 2 ? (q & 0xF) : (q & 0xF) << 4);
    qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
  }
  for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(Q6KScale(i)));
  PutHalf(b.data() + 208, kHalfEighth);
  return b;
}

TEST(DequantizeTest, Q6_KHandBuiltBlock) {
  const std::vector<float> y = Dequantize(DType::kQ6_K, BuildQ6KBlock(), 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.125f * Q6KScale(e / 16) * (Q6KQuant(e) - 32)) << e;
  }
  EXPECT_EQ(y[0], -3.875f);   // 0.125 * 1 * (1 - 32)
  EXPECT_EQ(y[255], -56.0f);  // 0.125 * -16 * (60 - 32)
}

TEST(DequantizeTest, RowsOfSeveralUnalignedBlocks) {
  // Three Q4_K blocks starting one byte into the buffer: each must decode as
  // it does alone.
  const std::vector<uint8_t> one = BuildQ4KBlock();
  std::vector<uint8_t> buf(1 + 3 * 144);
  for (int i = 0; i < 3; ++i) std::memcpy(&buf[1 + 144 * i], one.data(), 144);
  std::vector<float> row(3 * 256);
  DequantizeRowF32(DType::kQ4_K, buf.data() + 1, row.data(), 3 * 256);
  const std::vector<float> single = Dequantize(DType::kQ4_K, one, 256);
  for (int i = 0; i < 3 * 256; ++i) ASSERT_EQ(row[i], single[i % 256]) << i;
}

TEST(DequantizeTest, HalfAndBfloatRows) {
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal). BF16: 1, -123.5.
  const std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00};
  const std::vector<float> y = Dequantize(DType::kF16, f16, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], 65504.0f);
  EXPECT_EQ(y[3], std::ldexp(1.0f, -24));
  const std::vector<uint8_t> bf16 = {0x80, 0x3F, 0xF7, 0xC2};
  const std::vector<float> z = Dequantize(DType::kBF16, bf16, 2);
  EXPECT_EQ(z[0], 1.0f);
  EXPECT_EQ(z[1], -123.5f);
}

TEST(DequantizeTest, TypesOutsideTheContractGiveNaN) {
  EXPECT_FALSE(CanDequantizeRowF32(DType::kI8));
  EXPECT_FALSE(CanDequantizeRowF32(DType::kBool));
  EXPECT_TRUE(CanDequantizeRowF32(DType::kQ6_K));
  const std::vector<uint8_t> b(4, 1);
  const std::vector<float> y = Dequantize(DType::kI32, b, 1);
  EXPECT_TRUE(std::isnan(y[0]));
}

// ---- Reference quantizers: fixed blocks checked by hand ----

TEST(QuantizeTest, Q4_0KnownBlock) {
  // x[j] = j - 16: the largest magnitude is -16 (j = 0), so d = -16/-8 = 2 and
  // q = trunc(x/2 + 8.5) clamped to 15.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  std::vector<uint8_t> b(18);
  QuantizeRowQ4_0(x.data(), b.data(), 32);
  EXPECT_EQ(b[0] | (b[1] << 8), kHalfTwo);
  EXPECT_EQ(b[2], 0x80);       // j=0: trunc(0.5) = 0; j=16: trunc(8.5) = 8
  EXPECT_EQ(b[2 + 15], 0xF8);  // j=15: trunc(8) = 8; j=31: trunc(16) clamped to 15
  EXPECT_EQ(b[2 + 1], 0x91);   // j=1: trunc(1) = 1; j=17: trunc(9) = 9
}

TEST(QuantizeTest, Q4_1KnownBlock) {
  // x[j] = j: min 0, d = 31/15, q = trunc(j*15/31 + 0.5).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j);
  std::vector<uint8_t> b(20);
  QuantizeRowQ4_1(x.data(), b.data(), 32);
  EXPECT_EQ(b[2] | (b[3] << 8), 0);  // m = +0.0
  EXPECT_NEAR(F16ToF32(static_cast<uint16_t>(b[0] | (b[1] << 8))), 31.0f / 15.0f,
              31.0f / 15.0f / 2048);
  EXPECT_EQ(b[4], 0x80);       // j=0 -> 0; j=16 -> 7.74 -> 8
  EXPECT_EQ(b[4 + 15], 0xF7);  // j=15 -> 7.26 -> 7; j=31 -> 15
}

TEST(QuantizeTest, Q8_0KnownBlock) {
  // x[j] = j - 16: amax 16, d = 16/127, q = round(x*127/16).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  std::vector<uint8_t> b(34);
  QuantizeRowQ8_0(x.data(), b.data(), 32);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 0]), -127);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 16]), 0);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 119);  // 15*127/16 = 119.06
  EXPECT_EQ(static_cast<int8_t>(b[2 + 17]), 8);    // 127/16 = 7.94
}

TEST(QuantizeTest, ZeroBlocksQuantizeToZero) {
  std::vector<float> x(32, 0.0f);
  std::vector<uint8_t> b(34);
  std::vector<float> y(32, 1.0f);
  QuantizeRowQ8_0(x.data(), b.data(), 32);
  DequantizeRowF32(DType::kQ8_0, b.data(), y.data(), 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  QuantizeRowQ4_0(x.data(), b.data(), 32);
  DequantizeRowF32(DType::kQ4_0, b.data(), y.data(), 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

// ---- Round trips: quantize -> dequantize stays within each format's bound ----
//
// With d the fp32 scale and d16 its fp16 rounding (|d16 - d| <= |d| * 2^-11):
//   Q8_0: |x - q*d16| <= |d|/2 (rounding) + 127*|d|*2^-11
//   Q4_0: |x - (q-8)*d16| <= |d| (the clamp at 15 can cost a full step for the
//         element opposite the signed max) + 8*|d|*2^-11
//   Q4_1: |x - (q*d16 + m16)| <= d/2 + 15*d*2^-11 + |min|*2^-11
// plus a relative slack of 1e-6 of the block's magnitude for fp32 rounding.

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale, float offset) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng) * scale + offset;
  return x;
}

TEST(QuantizeTest, RoundTripsStayWithinTheirBounds) {
  constexpr int64_t kN = 32 * 64;
  constexpr float kUlp16 = 1.0f / 2048;
  struct Case {
    float scale, offset;
  };
  for (const Case c : {Case{1.0f, 0.0f}, Case{0.01f, 0.0f}, Case{30.0f, 0.0f}, Case{1.0f, 3.0f}}) {
    const std::vector<float> x = RandomRow(kN, 42, c.scale, c.offset);
    std::vector<uint8_t> q(kN / 32 * 34);
    std::vector<float> y(kN);

    QuantizeRowQ8_0(x.data(), q.data(), kN);
    DequantizeRowF32(DType::kQ8_0, q.data(), y.data(), kN);
    for (int64_t b = 0; b < kN / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
      const float d = amax / 127;
      const float bound = d / 2 + 127 * d * kUlp16 + 1e-6f * amax;
      for (int j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound)
            << "Q8_0 block " << b << " j " << j;
      }
    }

    QuantizeRowQ4_0(x.data(), q.data(), kN);
    DequantizeRowF32(DType::kQ4_0, q.data(), y.data(), kN);
    for (int64_t b = 0; b < kN / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[b * 32 + j]));
      const float d = amax / 8;
      const float bound = d + 8 * d * kUlp16 + 1e-6f * amax;
      for (int j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound)
            << "Q4_0 block " << b << " j " << j;
      }
    }

    QuantizeRowQ4_1(x.data(), q.data(), kN);
    DequantizeRowF32(DType::kQ4_1, q.data(), y.data(), kN);
    for (int64_t b = 0; b < kN / 32; ++b) {
      float mn = x[b * 32], mx = x[b * 32];
      for (int j = 0; j < 32; ++j) {
        mn = std::fmin(mn, x[b * 32 + j]);
        mx = std::fmax(mx, x[b * 32 + j]);
      }
      const float d = (mx - mn) / 15;
      const float mag = std::fmax(std::fabs(mn), std::fabs(mx));
      const float bound = d / 2 + 15 * d * kUlp16 + std::fabs(mn) * kUlp16 + 1e-6f * mag;
      for (int j = 0; j < 32; ++j) {
        ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound)
            << "Q4_1 block " << b << " j " << j;
      }
    }
  }
}

TEST(QuantizeTest, ExtremesLandOnTheirCodes) {
  // Q4_0 maps the signed max to code 0; Q4_1 maps min to 0 and max to 15.
  std::vector<float> x = RandomRow(32, 7, 1.0f, 0.0f);
  x[5] = -3.0f;  // the signed max (largest magnitude)
  x[9] = 2.0f;
  std::vector<uint8_t> b(20);
  QuantizeRowQ4_0(x.data(), b.data(), 32);
  EXPECT_EQ(b[2 + 5] & 0xF, 0);
  QuantizeRowQ4_1(x.data(), b.data(), 32);
  EXPECT_EQ(b[4 + 5] & 0xF, 0);
  EXPECT_EQ(b[4 + 9] & 0xF, 15);
}

}  // namespace
}  // namespace tierserve
