#include "kernels/cpu/repacked_matmul.h"

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize.h"

namespace tierserve::cpu {
namespace {

struct Quantized {
  std::vector<uint8_t> rows;    // GGUF layout
  std::vector<uint8_t> packed;  // repacked
  std::vector<float> deq;       // [N, K] dequantized from the GGUF rows
  int64_t row_bytes;
};

Quantized Make(DType type, int N, int K, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Quantized q;
  q.row_bytes = K / BlockElems(type) * BlockBytes(type);
  q.rows.resize(N * q.row_bytes);
  std::vector<float> w(K);
  for (int n = 0; n < N; ++n) {
    for (float& v : w) v = dist(*rng);
    uint8_t* dst = &q.rows[n * q.row_bytes];
    if (type == DType::kQ8_0) QuantizeRowQ8_0(w.data(), dst, K);
    else if (type == DType::kQ4_0) QuantizeRowQ4_0(w.data(), dst, K);
    else QuantizeRowQ4_1(w.data(), dst, K);
  }
  q.deq.resize(N * K);
  for (int n = 0; n < N; ++n) DequantizeRowF32(type, &q.rows[n * q.row_bytes], &q.deq[n * K], K);
  q.packed.resize(RepackedBytes(type, N, K));
  RepackRows(type, q.rows.data(), q.row_bytes, N, K, q.packed.data());
  return q;
}

class RepackedTest : public ::testing::TestWithParam<std::tuple<DType, int, int, int>> {};

TEST_P(RepackedTest, SameBytesAndRowsAsTheGgufLayout) {
  const auto [type, M, N, K] = GetParam();
  (void)M;
  std::mt19937 rng(N + K);
  const Quantized q = Make(type, N, K, &rng);
  EXPECT_EQ(static_cast<int64_t>(q.packed.size()), N * q.row_bytes);
  std::vector<float> row(K);
  for (int r = 0; r < N; ++r) {
    RepackedRowF32(type, q.packed.data(), K, r, row.data());
    for (int k = 0; k < K; ++k) ASSERT_EQ(row[k], q.deq[r * K + k]) << "row " << r << " col " << k;
  }
}

// Against a double-precision product over the dequantized GGUF rows.
TEST_P(RepackedTest, MatchesFp32OverDequantizedWeights) {
  const auto [type, M, N, K] = GetParam();
  std::mt19937 rng(M * 31 + N + K);
  const Quantized q = Make(type, N, K, &rng);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(M * K);
  for (float& v : x) v = dist(rng);
  std::vector<float> y(M * N, -99.0f);
  RepackedMatMulF32(type, x.data(), K, q.packed.data(), y.data(), N, M, K, 0, N / 2 / 16 * 16);
  RepackedMatMulF32(type, x.data(), K, q.packed.data(), y.data(), N, M, K, N / 2 / 16 * 16, N);
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        ref += static_cast<double>(x[m * K + k]) * q.deq[n * K + k];
        mag += std::abs(static_cast<double>(x[m * K + k]) * q.deq[n * K + k]);
      }
      ASSERT_NEAR(y[m * N + n], ref, 4e-7 * mag * std::sqrt(static_cast<double>(K)) + 1e-6)
          << DTypeName(type) << " m=" << m << " n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RepackedTest,
                         ::testing::Combine(::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_1),
                                            ::testing::Values(1, 2, 3, 4, 5, 8, 13, 16, 32),
                                            ::testing::Values(16, 48),
                                            ::testing::Values(32, 576)));

// Batch invariance: a row of X gets the same bits from a call of any M, at any
// position in it (continuous batching puts a sequence's row anywhere), as
// from a call with that row alone. kM and the calls of 16 and 32 rows are
// past the rows from which the decoded path takes two groups per pass
// (AVX-512), so that path is held to it too.
class RepackedBatchInvarianceTest : public ::testing::TestWithParam<std::tuple<DType, int, int>> {};

TEST_P(RepackedBatchInvarianceTest, EveryRowHasItsBitsAlone) {
  const auto [type, N, K] = GetParam();
  constexpr int kM = 70;
  std::mt19937 rng(7 * N + K);
  const Quantized q = Make(type, N, K, &rng);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(kM * K);
  for (float& v : x) v = dist(rng);
  std::vector<float> all(kM * N);
  RepackedMatMulF32(type, x.data(), K, q.packed.data(), all.data(), N, kM, K, 0, N);
  const auto same_as_all = [&, n = N](const float* y, int m) {
    return std::memcmp(y, &all[m * n], sizeof(float) * n) == 0;
  };
  std::vector<float> y(kM * N);
  for (int m = 0; m < kM; ++m) {
    RepackedMatMulF32(type, &x[m * K], K, q.packed.data(), y.data(), N, 1, K, 0, N);
    ASSERT_TRUE(same_as_all(y.data(), m)) << DTypeName(type) << " row " << m << " alone";
  }
  for (int rows : {2, 3, 5, 8, 13, 16, 32}) {
    for (int start : {0, 1, 6, 19, kM - rows}) {
      RepackedMatMulF32(type, &x[start * K], K, q.packed.data(), y.data(), N, rows, K, 0, N);
      for (int i = 0; i < rows; ++i) {
        ASSERT_TRUE(same_as_all(&y[i * N], start + i))
            << DTypeName(type) << " row " << start + i << " of " << rows << " from " << start;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RepackedBatchInvarianceTest,
                         ::testing::Combine(::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_1),
                                            ::testing::Values(16, 48),
                                            ::testing::Values(32, 96, 576)));

TEST(RepackedTest, OnlyWholeGroupsOfServedTypes) {
  EXPECT_TRUE(CanRepack(DType::kQ4_1, 576, 576));
  EXPECT_FALSE(CanRepack(DType::kQ4_1, 8, 576));   // not 16 rows
  EXPECT_FALSE(CanRepack(DType::kQ4_1, 16, 48));   // not whole blocks
  EXPECT_FALSE(CanRepack(DType::kQ4_K, 256, 256));
  EXPECT_FALSE(CanRepack(DType::kF32, 16, 32));
}

}  // namespace
}  // namespace tierserve::cpu
