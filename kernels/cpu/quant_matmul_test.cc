#include "kernels/cpu/quant_matmul.h"

#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize.h"

namespace tierserve::cpu {
namespace {

class QuantMatMulTest : public ::testing::TestWithParam<std::tuple<DType, int, int, int>> {};

// Against a double-precision product over the dequantized weights: the
// kernel must compute exactly that matrix, only summed in another order.
TEST_P(QuantMatMulTest, MatchesFp32OverDequantizedWeights) {
  const auto [type, M, N, K] = GetParam();
  std::mt19937 rng(M * 7 + N * 13 + K);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(M * K), w(N * K);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  const int64_t row_bytes = K / BlockElems(type) * BlockBytes(type);
  std::vector<uint8_t> q(N * row_bytes);
  for (int n = 0; n < N; ++n) {
    switch (type) {
      case DType::kQ8_0: QuantizeRowQ8_0(&w[n * K], &q[n * row_bytes], K); break;
      case DType::kQ4_0: QuantizeRowQ4_0(&w[n * K], &q[n * row_bytes], K); break;
      default: QuantizeRowQ4_1(&w[n * K], &q[n * row_bytes], K); break;
    }
  }
  std::vector<float> deq(N * K);
  for (int n = 0; n < N; ++n) DequantizeRowF32(type, &q[n * row_bytes], &deq[n * K], K);

  std::vector<float> y(M * N, -99.0f);
  // Two calls over split row ranges, as threads make them.
  QuantMatMulF32(type, x.data(), K, q.data(), row_bytes, y.data(), N, M, K, 0, N / 2);
  QuantMatMulF32(type, x.data(), K, q.data(), row_bytes, y.data(), N, M, K, N / 2, N);
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        ref += static_cast<double>(x[m * K + k]) * deq[n * K + k];
        mag += std::abs(static_cast<double>(x[m * K + k]) * deq[n * K + k]);
      }
      // fp32 rounding of a K-term sum: a few ulps of the sum of magnitudes.
      ASSERT_NEAR(y[m * N + n], ref, 4e-7 * mag * std::sqrt(static_cast<double>(K)) + 1e-6)
          << DTypeName(type) << " m=" << m << " n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, QuantMatMulTest,
    ::testing::Combine(::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ4_1),
                       ::testing::Values(1, 2, 3, 4, 5, 8, 17),  // register path, then tiled
                       ::testing::Values(7, 40),
                       ::testing::Values(32, 576)));

TEST(QuantMatMulTest, SupportsExactlyTheServedBlockTypes) {
  EXPECT_TRUE(QuantMatMulSupports(DType::kQ8_0));
  EXPECT_TRUE(QuantMatMulSupports(DType::kQ4_0));
  EXPECT_TRUE(QuantMatMulSupports(DType::kQ4_1));
  EXPECT_FALSE(QuantMatMulSupports(DType::kF32));
  EXPECT_FALSE(QuantMatMulSupports(DType::kQ4_K));
}

}  // namespace
}  // namespace tierserve::cpu
