#include "kernels/cpu/matmul.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve::cpu {
namespace {

// Plain triple loop in double: the reference the kernel is held to.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w, int64_t M,
                              int64_t N, int64_t K) {
  std::vector<double> y(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

class MatMulTest : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(MatMulTest, MatchesReference) {
  const auto [M, N, K] = GetParam();
  std::mt19937 rng(M * 1000 + N * 10 + K);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(M * K), w(N * K), y(M * N, -7.0f);
  for (float& v : x) v = dist(rng);
  for (float& v : w) v = dist(rng);
  MatMulF32(x.data(), K, w.data(), y.data(), N, M, K, 0, N);
  const std::vector<double> ref = Reference(x, w, M, N, K);
  // fp32 accumulation of K products of magnitude <= 1: error well under 1e-6 * K.
  const double tol = 1e-6 * K;
  for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(y[i], ref[i], tol) << "element " << i;
}

// Shapes cover every tile remainder: M mod 4, N mod 4 and K mod 16.
INSTANTIATE_TEST_SUITE_P(Shapes, MatMulTest,
                         ::testing::Values(std::make_tuple(1, 1, 1), std::make_tuple(1, 7, 33),
                                           std::make_tuple(2, 64, 64), std::make_tuple(3, 130, 17),
                                           std::make_tuple(4, 5, 576), std::make_tuple(5, 67, 100),
                                           std::make_tuple(9, 200, 1536),
                                           std::make_tuple(16, 64, 48)));

TEST(MatMulTest, WritesOnlyItsRowRange) {
  const int64_t M = 3, N = 40, K = 20;
  std::vector<float> x(M * K, 1.0f), w(N * K, 1.0f), y(M * N, -1.0f);
  MatMulF32(x.data(), K, w.data(), y.data(), N, M, K, 8, 24);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      EXPECT_EQ(y[m * N + n], (n >= 8 && n < 24) ? 20.0f : -1.0f) << m << "," << n;
}

}  // namespace
}  // namespace tierserve::cpu
