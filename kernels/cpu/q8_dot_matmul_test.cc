#include "kernels/cpu/q8_dot_matmul.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/gguf_blocks.h"
#include "kernels/common/half.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize.h"

namespace tierserve::cpu {
namespace {

constexpr DType kTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0};

struct Weights {
  std::vector<uint8_t> rows;    // GGUF layout
  std::vector<uint8_t> packed;  // RepackQ8Dot
  std::vector<float> deq;       // [N, K] dequantized from the GGUF rows
  int64_t row_bytes = 0;
};

Weights Make(DType type, int64_t N, int64_t K, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Weights w;
  w.row_bytes = K / BlockElems(type) * BlockBytes(type);
  w.rows.resize(static_cast<size_t>(N * w.row_bytes));
  std::vector<float> v(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    for (float& x : v) x = dist(*rng);
    uint8_t* dst = &w.rows[static_cast<size_t>(n * w.row_bytes)];
    if (type == DType::kQ8_0) QuantizeRowQ8_0(v.data(), dst, K);
    else if (type == DType::kQ4_0) QuantizeRowQ4_0(v.data(), dst, K);
    else QuantizeRowQ4_1(v.data(), dst, K);
  }
  w.deq.resize(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n) DequantizeRowF32(type, &w.rows[n * w.row_bytes], &w.deq[n * K], K);
  w.packed.resize(w.rows.size());
  RepackQ8Dot(type, w.rows.data(), w.row_bytes, N, K, w.packed.data());
  return w;
}

std::vector<float> Activations(int64_t M, int64_t K, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(M * K));
  for (float& v : x) v = dist(*rng);
  return x;
}

// The sums of the header, straight from the GGUF rows (not the repacked
// layout), one block at a time.
std::vector<float> Reference(DType type, const Weights& w, const Q8Activations& a, int64_t M, int64_t N,
                             int64_t K) {
  const int64_t nb = K / 32;
  const int64_t bb = BlockBytes(type);
  std::vector<float> y(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = &w.rows[n * w.row_bytes + b * bb];
        const int64_t ab = i * nb + b;
        const int8_t* xq = &a.q[ab * 32];
        const float dw = F16ToF32(static_cast<uint16_t>(blk[0] | (blk[1] << 8)));
        int32_t dot = 0;
        for (int k = 0; k < 32; ++k) {
          int32_t q;
          if (type == DType::kQ8_0) q = static_cast<int8_t>(blk[2 + k]);
          else {
            const uint8_t byte = blk[(type == DType::kQ4_1 ? 4 : 2) + k % 16];
            q = k < 16 ? (byte & 0x0F) : (byte >> 4);
            if (type == DType::kQ4_0) q -= 8;
          }
          dot += q * xq[k];
        }
        acc = std::fma(dw * a.d[ab], static_cast<float>(dot), acc);
        if (type == DType::kQ4_1) {
          acc = std::fma(F16ToF32(static_cast<uint16_t>(blk[2] | (blk[3] << 8))), a.s[ab], acc);
        }
      }
      y[i * N + n] = acc;
    }
  }
  return y;
}

std::vector<CpuPath> Paths() { return SupportedCpuPaths({CpuPath::kPortable, CpuPath::kAvx2, CpuPath::kAvx512Vnni}); }

TEST(QuantizeQ8Test, ScalesRoundsToNearestEvenAndSums) {
  // One block: amax 127 gives d = 1 and q = x rounded half to even.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;   // -> 2
  x[2] = 3.5f;   // -> 4
  x[3] = -2.5f;  // -> -2
  x[4] = -0.4f;  // -> 0
  Q8Activations a;
  QuantizeQ8(x.data(), 32, 1, 32, &a);
  EXPECT_EQ(a.blocks, 1);
  EXPECT_EQ(a.q[0], 127);
  EXPECT_EQ(a.q[1], 2);
  EXPECT_EQ(a.q[2], 4);
  EXPECT_EQ(a.q[3], -2);
  EXPECT_EQ(a.q[4], 0);
  EXPECT_EQ(a.qsum[0], 131);
  EXPECT_EQ(a.d[0], 1.0f);
  EXPECT_EQ(a.s[0], 131.0f);
  // A zero block: d = 0, q = 0, s = 0.
  std::vector<float> z(64, 0.0f);
  z[40] = 0.3f;
  QuantizeQ8(z.data(), 64, 1, 64, &a);
  EXPECT_EQ(a.d[0], 0.0f);
  EXPECT_EQ(a.s[0], 0.0f);
  EXPECT_EQ(a.qsum[0], 0);
  // The second block: d is amax / 127 rounded to fp16, q = 127 at the max.
  EXPECT_EQ(a.d[1], F16ToF32(F32ToF16(0.3f / 127.0f)));
  EXPECT_EQ(a.q[32 + 8], 127);
}

// Rows of 10 and of 66 blocks: the vector paths take a row's scales 8
// blocks at a time, the rest one at a time, in passes of 64 blocks.
TEST(QuantizeQ8Test, EveryPathGivesTheSameBytesAndScales) {
  for (const int64_t K : {320, 2112}) {
  std::mt19937 rng(6);
  const int64_t M = 5;
  std::vector<float> x = Activations(M, K, &rng);
  // Exact halves (ties), a zero block, a block of one sign, denormal-small values.
  x[0] = 127.0f;  // d = 1: the others are exact halves, -14.5 .. 15.5
  for (int64_t k = 1; k < 32; ++k) x[k] = static_cast<float>(k - 16) + 0.5f;
  for (int64_t k = 32; k < 64; ++k) x[k] = 0.0f;
  for (int64_t k = 64; k < 96; ++k) x[k] = 1e-39f * static_cast<float>(k);
  for (int64_t k = 96; k < 128; ++k) x[k] = -std::fabs(x[k]);
  for (int64_t k = 128; k < 160; ++k) x[k] = 2.5f * static_cast<float>(k % 5) - 5.0f;
  Q8Activations want;
  QuantizeQ8OnPath(CpuPath::kPortable, x.data(), K, M, K, &want);
  for (CpuPath path : Paths()) {
    Q8Activations got;
    QuantizeQ8OnPath(path, x.data(), K, M, K, &got);
    EXPECT_EQ(got.q, want.q) << CpuPathName(path);
    EXPECT_EQ(std::memcmp(got.d.data(), want.d.data(), want.d.size() * sizeof(float)), 0) << CpuPathName(path);
    EXPECT_EQ(std::memcmp(got.s.data(), want.s.data(), want.s.size() * sizeof(float)), 0) << CpuPathName(path);
    EXPECT_EQ(got.qsum, want.qsum) << CpuPathName(path);
  }
  }
}

// A NaN or an infinity anywhere in a block (the lanes of a vector differ in
// how max treats NaN, so each position is tried) makes the whole block zeros
// with NaN scales, on every path; the other blocks are untouched, and the
// products of that row are NaN, those of the other rows finite.
TEST(QuantizeQ8Test, ANonFiniteBlockIsZerosWithNaNScalesOnEveryPath) {
  std::mt19937 rng(8);
  const int64_t M = 2, K = 320;  // block 1 among the 8 whose scales the vector paths take together
  const std::vector<float> clean = Activations(M, K, &rng);
  Q8Activations base;
  QuantizeQ8OnPath(CpuPath::kPortable, clean.data(), K, M, K, &base);
  const float kBad[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (float bad : kBad) {
    for (int64_t k = 32; k < 64; ++k) {  // block 1 of row 0
      std::vector<float> x = clean;
      x[k] = bad;
      for (CpuPath path : Paths()) {
        Q8Activations a;
        QuantizeQ8OnPath(path, x.data(), K, M, K, &a);
        const std::string where = std::string(CpuPathName(path)) + " value " + std::to_string(bad) +
                                  " at column " + std::to_string(k);
        for (int64_t j = 32; j < 64; ++j) ASSERT_EQ(a.q[j], 0) << where;
        ASSERT_TRUE(std::isnan(a.d[1])) << where;
        ASSERT_TRUE(std::isnan(a.s[1])) << where;
        ASSERT_EQ(a.qsum[1], 0) << where;
        for (int64_t blk : {0, 2, 3, 4, 5}) {
          ASSERT_EQ(a.d[blk], base.d[blk]) << where << " block " << blk;
          ASSERT_EQ(a.qsum[blk], base.qsum[blk]) << where << " block " << blk;
        }
        for (DType type : kTypes) {
          const Weights w = Make(type, 16, K, &rng);
          std::vector<float> y(static_cast<size_t>(M * 16));
          Q8DotMatMulOnPath(path, type, a, w.packed.data(), y.data(), 16, M, K, 0, 16);
          for (int64_t n = 0; n < 16; ++n) {
            ASSERT_TRUE(std::isnan(y[n])) << where << " " << DTypeName(type) << " row 0 col " << n;
            ASSERT_TRUE(std::isfinite(y[16 + n])) << where << " " << DTypeName(type) << " row 1 col " << n;
          }
        }
      }
    }
  }
}

TEST(QuantizeQ8Test, ErrorIsAtMostHalfAStep) {
  std::mt19937 rng(5);
  const int64_t M = 3, K = 256;
  const std::vector<float> x = Activations(M, K, &rng);
  Q8Activations a;
  QuantizeQ8(x.data(), K, M, K, &a);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t blk = i * (K / 32) + k / 32;
      const float unrounded_d = [&] {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i * K + k / 32 * 32 + j]));
        return amax / 127.0f;
      }();
      // q * d_unrounded is x within half a step (plus the float error of x / d).
      EXPECT_LE(std::fabs(a.q[i * K + k] * unrounded_d - x[i * K + k]), 0.5001f * unrounded_d)
          << "row " << i << " col " << k << " block " << blk;
    }
  }
}

TEST(Q8DotMatMulTest, EveryPathEqualsTheReferenceBitForBit) {
  std::mt19937 rng(11);
  for (DType type : kTypes) {
    for (auto [N, K] : {std::pair<int64_t, int64_t>{16, 32}, {48, 96}, {32, 576}}) {
      const Weights w = Make(type, N, K, &rng);
      for (int64_t M : {1, 2, 3, 4, 5, 9}) {
        const std::vector<float> x = Activations(M, K, &rng);
        Q8Activations a;
        QuantizeQ8(x.data(), K, M, K, &a);
        const std::vector<float> want = Reference(type, w, a, M, N, K);
        for (CpuPath path : Paths()) {
          std::vector<float> y(static_cast<size_t>(M * N), -1.0f);
          Q8DotMatMulOnPath(path, type, a, w.packed.data(), y.data(), N, M, K, 0, N);
          EXPECT_EQ(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)), 0)
              << DTypeName(type) << " " << CpuPathName(path) << " M=" << M << " N=" << N << " K=" << K
              << " y[0]=" << y[0] << " want " << want[0];
        }
      }
    }
  }
}

TEST(Q8DotMatMulTest, ARowGetsTheSameBitsAloneAndInABatchAndInAColumnRange) {
  std::mt19937 rng(12);
  const int64_t N = 64, K = 192, M = 7;
  for (DType type : kTypes) {
    const Weights w = Make(type, N, K, &rng);
    const std::vector<float> x = Activations(M, K, &rng);
    Q8Activations all;
    QuantizeQ8(x.data(), K, M, K, &all);
    std::vector<float> batch(static_cast<size_t>(M * N));
    Q8DotMatMul(type, all, w.packed.data(), batch.data(), N, M, K, 0, N);
    for (int64_t i = 0; i < M; ++i) {
      Q8Activations one;
      QuantizeQ8(x.data() + i * K, K, 1, K, &one);
      std::vector<float> alone(static_cast<size_t>(N));
      // Two column ranges, as two threads would take them.
      Q8DotMatMul(type, one, w.packed.data(), alone.data(), N, 1, K, 0, 32);
      Q8DotMatMul(type, one, w.packed.data(), alone.data(), N, 1, K, 32, N);
      EXPECT_EQ(std::memcmp(alone.data(), batch.data() + i * N, N * sizeof(float)), 0)
          << DTypeName(type) << " row " << i;
    }
  }
}

// Against the fp32 product of the dequantized weights and the unquantized
// activations: the difference is the activations' rounding, at most half a
// step d_x/2 per element, so |y - y_fp32| <= sum_k |w_k| d_x(k)/2, plus the
// fp32 rounding of both sums (bounded loosely by 1e-5 of sum |w x|).
TEST(Q8DotMatMulTest, WithinTheActivationRoundingOfTheFp32Product) {
  std::mt19937 rng(13);
  const int64_t N = 32, K = 512, M = 3;
  for (DType type : kTypes) {
    const Weights w = Make(type, N, K, &rng);
    const std::vector<float> x = Activations(M, K, &rng);
    Q8Activations a;
    QuantizeQ8(x.data(), K, M, K, &a);
    std::vector<float> y(static_cast<size_t>(M * N));
    Q8DotMatMul(type, a, w.packed.data(), y.data(), N, M, K, 0, N);
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t n = 0; n < N; ++n) {
        double exact = 0, bound = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double wk = w.deq[n * K + k];
          exact += wk * x[i * K + k];
          mag += std::fabs(wk * x[i * K + k]);
          // d rounded to fp16 moves each q * d by up to 2^-11 relative.
          const double dx = a.d[i * (K / 32) + k / 32];
          bound += std::fabs(wk) * (0.5 * dx + std::fabs(x[i * K + k]) * std::ldexp(1.0, -10));
        }
        // Q4_1's m * s: s is fp16-rounded d * sum(q).
        if (type == DType::kQ4_1) {
          for (int64_t b = 0; b < K / 32; ++b) {
            const uint8_t* blk = &w.rows[n * w.row_bytes + b * BlockBytes(type)];
            const double m = std::fabs(F16ToF32(static_cast<uint16_t>(blk[2] | (blk[3] << 8))));
            bound += m * std::fabs(a.s[i * (K / 32) + b]) * std::ldexp(1.0, -10);
          }
        }
        bound += 1e-5 * mag;
        EXPECT_LE(std::fabs(y[i * N + n] - exact), bound) << DTypeName(type) << " " << i << "," << n;
      }
    }
  }
}

TEST(Q8DotMatMulTest, RowsDecodeAsTheStoredRows) {
  std::mt19937 rng(14);
  const int64_t N = 32, K = 96;
  for (DType type : kTypes) {
    const Weights w = Make(type, N, K, &rng);
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t r = 0; r < N; ++r) {
      Q8DotRowF32(type, w.packed.data(), K, r, row.data());
      EXPECT_EQ(std::memcmp(row.data(), &w.deq[r * K], K * sizeof(float)), 0) << DTypeName(type) << " row " << r;
    }
  }
}

TEST(Q8DotMatMulTest, CanRepackNeedsWholeGroupsAndBlocks) {
  EXPECT_TRUE(CanRepackQ8Dot(DType::kQ4_1, 16, 32));
  EXPECT_FALSE(CanRepackQ8Dot(DType::kQ4_1, 24, 32));
  EXPECT_FALSE(CanRepackQ8Dot(DType::kQ4_1, 16, 48));
  EXPECT_FALSE(CanRepackQ8Dot(DType::kF32, 16, 32));
  EXPECT_FALSE(CanRepackQ8Dot(DType::kQ4_K, 16, 256));
}

}  // namespace
}  // namespace tierserve::cpu
