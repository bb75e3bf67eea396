// Dequantization is checked bit for bit against goldens the `gguf` package
// (gguf-py, ggml's own Python reader) wrote itself:
// tests/conformance/make_gguf_dequant_goldens.py ->
// tests/data/gguf_quants/goldens.safetensors. Every type DequantizeRowF32
// accepts has cases there (zeros, largest fp16 scales, negative, subnormal and
// signed-zero scales, random blocks, and gguf's own quantization of a fixed
// vector where gguf can quantize the type); the fp32 outputs must match to the
// bit, so even the sign of a zero counts. The quantizers we have (Q8_0, Q4_0,
// Q4_1, and the F16/BF16 conversions) must produce gguf's bytes exactly.
#include "kernels/cpu/dequantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"
#include "kernels/cpu/quantize.h"
#include "kernels/common/dtype.h"
#include "nlohmann/json.hpp"

namespace tierserve {
namespace {

constexpr char kGoldenPath[] = "tests/data/gguf_quants/goldens.safetensors";

// Cases each type must have in the golden (make_gguf_dequant_goldens.py): a
// golden that lost a type or a case fails here rather than passing vacuously.
const std::map<DType, size_t> kExpectedCases = {
    {DType::kF32, 3},  {DType::kF16, 3},  {DType::kBF16, 3}, {DType::kQ8_0, 7},
    {DType::kQ4_0, 7}, {DType::kQ4_1, 7}, {DType::kQ5_0, 7}, {DType::kQ5_1, 7},
    {DType::kQ4_K, 7}, {DType::kQ6_K, 7},
};

struct Tensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  template <typename T>
  std::vector<T> as() const {
    std::vector<T> v(bytes.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
  }
};

// The golden file: 8-byte little-endian header length, JSON header, raw data.
struct Goldens {
  std::map<std::string, Tensor> tensors;
  nlohmann::json metadata;
  std::string error;

  const Tensor* find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }

  // Names C of the cases "<type>.C.values" present for `type`.
  std::set<std::string> CasesOf(DType type) const {
    const std::string prefix = std::string(DTypeName(type)) + ".";
    const std::string suffix = ".values";
    std::set<std::string> cases;
    for (const auto& [name, t] : tensors) {
      if (name.size() > prefix.size() + suffix.size() && name.starts_with(prefix) &&
          name.ends_with(suffix)) {
        cases.insert(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
      }
    }
    return cases;
  }
};

Goldens Load() {
  Goldens g;
  std::ifstream in(kGoldenPath, std::ios::binary);
  if (!in) {
    g.error = std::string("cannot open ") + kGoldenPath;
    return g;
  }
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < 8) {
    g.error = "file shorter than its header length";
    return g;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];
  if (header_len > file.size() - 8) {
    g.error = "header length past the end of the file";
    return g;
  }
  const auto header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + header_len, nullptr,
                                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    g.error = "header is not a JSON object";
    return g;
  }
  const size_t data_begin = 8 + header_len;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      g.metadata = entry;
      continue;
    }
    Tensor t;
    t.dtype = entry.at("dtype").get<std::string>();
    t.shape = entry.at("shape").get<std::vector<int64_t>>();
    const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > file.size() - data_begin) {
      g.error = "bad data_offsets for " + name;
      return g;
    }
    t.bytes.assign(file.begin() + data_begin + offsets[0], file.begin() + data_begin + offsets[1]);
    g.tensors.emplace(name, std::move(t));
  }
  return g;
}

const Goldens& G() {
  static const Goldens g = Load();
  return g;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Bit equality of got and want, reporting the first differing element.
void ExpectSameFloatBits(const std::vector<float>& got, const std::vector<float>& want,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (Bits(got[i]) != Bits(want[i])) {
      ADD_FAILURE() << what << ": first difference at element " << i << " of " << got.size()
                    << ": got " << got[i] << " (0x" << std::hex << Bits(got[i]) << "), gguf "
                    << want[i] << " (0x" << Bits(want[i]) << std::dec << ")";
      return;
    }
  }
}

void ExpectSameBytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want,
                     const std::string& what, int64_t block_bytes) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << ": first difference at byte " << i % block_bytes << " of block "
                    << i / block_bytes << ": got 0x" << std::hex << +got[i] << ", gguf 0x"
                    << +want[i] << std::dec;
      return;
    }
  }
}

TEST(GgufGoldensTest, CoverEveryDequantizableType) {
  ASSERT_TRUE(G().error.empty()) << G().error;
  ASSERT_TRUE(G().metadata.contains("gguf")) << "the golden does not record its gguf version";
  // Every type the dequantizer accepts, and only those, has its cases
  // (kQ6_K is the last DType; a type added after it must extend this loop).
  for (int i = 0; i <= static_cast<int>(DType::kQ6_K); ++i) {
    const DType type = static_cast<DType>(i);
    const size_t found = G().CasesOf(type).size();
    if (!CanDequantizeRowF32(type)) {
      EXPECT_EQ(found, 0u) << DTypeName(type);
      continue;
    }
    auto it = kExpectedCases.find(type);
    ASSERT_NE(it, kExpectedCases.end()) << DTypeName(type) << " is dequantizable but has no goldens";
    EXPECT_EQ(found, it->second) << DTypeName(type);
  }
}

class GgufGoldenDequantizeTest : public testing::TestWithParam<DType> {};

// Each case of the type dequantizes to gguf's floats bit for bit, from an
// aligned buffer and from one starting one byte in (blocks sit at any offset
// in a mapped file).
TEST_P(GgufGoldenDequantizeTest, MatchesGgufBitForBit) {
  ASSERT_TRUE(G().error.empty()) << G().error;
  const DType type = GetParam();
  const std::set<std::string> cases = G().CasesOf(type);
  ASSERT_FALSE(cases.empty()) << "no golden cases for " << DTypeName(type);
  for (const std::string& c : cases) {
    const std::string base = std::string(DTypeName(type)) + "." + c;
    const Tensor* blocks = G().find(base + ".blocks");
    const Tensor* values = G().find(base + ".values");
    ASSERT_NE(blocks, nullptr) << base;
    ASSERT_NE(values, nullptr) << base;
    ASSERT_EQ(blocks->dtype, "U8") << base;
    ASSERT_EQ(values->dtype, "F32") << base;
    ASSERT_EQ(blocks->shape.size(), 2u) << base;
    ASSERT_EQ(blocks->shape[1], BlockBytes(type)) << base;
    const int64_t n_blocks = blocks->shape[0];
    ASSERT_GT(n_blocks, 0) << base;
    const int64_t n = n_blocks * BlockElems(type);
    ASSERT_EQ(static_cast<int64_t>(values->bytes.size()), n * 4) << base;
    const std::vector<float> want = values->as<float>();

    std::vector<float> got(static_cast<size_t>(n), -12345.0f);
    DequantizeRowF32(type, blocks->bytes.data(), got.data(), n);
    ExpectSameFloatBits(got, want, base);

    std::vector<uint8_t> shifted(1 + blocks->bytes.size());
    std::memcpy(shifted.data() + 1, blocks->bytes.data(), blocks->bytes.size());
    std::fill(got.begin(), got.end(), -12345.0f);
    DequantizeRowF32(type, shifted.data() + 1, got.data(), n);
    ExpectSameFloatBits(got, want, base + " (one byte off alignment)");
  }
}

INSTANTIATE_TEST_SUITE_P(EveryType, GgufGoldenDequantizeTest,
                         testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                         DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                         DType::kQ4_K, DType::kQ6_K),
                         [](const testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

// Our quantizers against gguf.quants.quantize of the same fp32 vector.
TEST(GgufGoldensTest, QuantizersMatchGgufBytes) {
  ASSERT_TRUE(G().error.empty()) << G().error;
  struct Quantizer {
    DType type;
    void (*quantize)(const float*, void*, int64_t);
  };
  for (const Quantizer q : {Quantizer{DType::kQ8_0, QuantizeRowQ8_0},
                            Quantizer{DType::kQ4_0, QuantizeRowQ4_0},
                            Quantizer{DType::kQ4_1, QuantizeRowQ4_1}}) {
    const std::string base = std::string(DTypeName(q.type)) + ".quantize";
    const Tensor* input = G().find(base + ".input");
    const Tensor* blocks = G().find(base + ".blocks");
    ASSERT_NE(input, nullptr) << base;
    ASSERT_NE(blocks, nullptr) << base;
    const std::vector<float> x = input->as<float>();
    const int64_t n = static_cast<int64_t>(x.size());
    ASSERT_GT(n, 0) << base;
    ASSERT_EQ(n % BlockElems(q.type), 0) << base;
    std::vector<uint8_t> got(static_cast<size_t>(n / BlockElems(q.type) * BlockBytes(q.type)));
    q.quantize(x.data(), got.data(), n);
    ExpectSameBytes(got, blocks->bytes, base, BlockBytes(q.type));
  }
}

TEST(GgufGoldensTest, HalfConversionsMatchGgufBytes) {
  ASSERT_TRUE(G().error.empty()) << G().error;
  struct Conversion {
    DType type;
    uint16_t (*convert)(float);
  };
  for (const Conversion c : {Conversion{DType::kF16, F32ToF16}, Conversion{DType::kBF16, F32ToBF16}}) {
    const std::string base = std::string(DTypeName(c.type)) + ".quantize";
    const Tensor* input = G().find(base + ".input");
    const Tensor* blocks = G().find(base + ".blocks");
    ASSERT_NE(input, nullptr) << base;
    ASSERT_NE(blocks, nullptr) << base;
    const std::vector<float> x = input->as<float>();
    ASSERT_FALSE(x.empty()) << base;
    std::vector<uint8_t> got(2 * x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const uint16_t h = c.convert(x[i]);
      got[2 * i] = static_cast<uint8_t>(h & 0xFF);
      got[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
    ExpectSameBytes(got, blocks->bytes, base, 2);
  }
}

TEST(DequantizeTest, TypesOutsideTheContractGiveNaN) {
  EXPECT_FALSE(CanDequantizeRowF32(DType::kI8));
  EXPECT_FALSE(CanDequantizeRowF32(DType::kBool));
  EXPECT_TRUE(CanDequantizeRowF32(DType::kQ6_K));
  const std::vector<uint8_t> b(4, 1);
  std::vector<float> y(1, -12345.0f);
  DequantizeRowF32(DType::kI32, b.data(), y.data(), 1);
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
  EXPECT_EQ(b[0] | (b[1] << 8), 0x4000);  // 2.0 in fp16
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
