#include "kernels/cpu/int8_matmul.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <limits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve::cpu {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

// Higham's gamma_n: the relative error bound of n fp32 roundings.
double Gamma(double n) { return n * kU / (1 - n * kU); }

// The contract's quantization, written out plainly.
struct RefQuant {
  std::vector<int> q;                      // [M, K]
  std::vector<float> sca;                  // [M]
  std::vector<std::vector<int64_t>> cols;  // per row, ascending
};

RefQuant ReferenceQuantize(const std::vector<float>& x, int64_t M, int64_t K, float threshold) {
  RefQuant r;
  r.q.assign(M * K, 0);
  r.sca.assign(M, 0.0f);
  r.cols.resize(M);
  for (int64_t t = 0; t < M; ++t) {
    float amax = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(x[t * K + k]);
      if (threshold > 0 && a >= threshold) {
        r.cols[t].push_back(k);
      } else if (a > amax) {
        amax = a;
      }
    }
    r.sca[t] = amax;
    if (amax == 0) continue;
    size_t next = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (next < r.cols[t].size() && r.cols[t][next] == k) {
        ++next;
        continue;
      }
      const float scaled = x[t * K + k] * ((1.0f / amax) * 127.0f);  // torch: reciprocal, then * 127
      const double rounded = std::nearbyint(static_cast<double>(scaled));  // half to even
      r.q[t * K + k] = static_cast<int>(std::fmax(-127.0, std::fmin(127.0, rounded)));
    }
  }
  return r;
}

// Activations with the cases that matter: a zero row, a row of only
// outliers, values exactly at +-threshold, and outliers of both signs.
std::vector<float> MakeActivations(int64_t M, int64_t K, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::uniform_real_distribution<float> big(6.0f, 40.0f);
  std::uniform_int_distribution<int> pick(0, 40);
  std::vector<float> x(M * K);
  for (float& v : x) {
    v = normal(*rng);
    const int p = pick(*rng);
    if (p == 0) v = big(*rng);
    if (p == 1) v = -big(*rng);
    if (p == 2) v = 6.0f;
    if (p == 3) v = -6.0f;
    if (p == 4) v = std::nextafter(6.0f, 0.0f);
  }
  if (M > 1) std::fill(x.begin() + K, x.begin() + 2 * K, 0.0f);  // all zeros
  if (M > 2) {
    for (int64_t k = 0; k < K; ++k) x[2 * K + k] = (k % 2 ? -1.0f : 1.0f) * (7.0f + k);
  }
  return x;
}

struct Int8Weights {
  std::vector<int8_t> cb;
  std::vector<float> scb;
  std::vector<int32_t> row_sum;
  Int8WeightAux aux;
};

Int8Weights MakeWeights(int64_t N, int64_t K, std::mt19937* rng) {
  std::uniform_int_distribution<int> q(-127, 127);
  std::uniform_real_distribution<float> s(0.01f, 3.0f);
  Int8Weights w;
  w.cb.resize(N * K);
  w.scb.resize(N);
  for (int8_t& v : w.cb) v = static_cast<int8_t>(q(*rng));
  // Extremes: a row of -127 (against q = +-127 this is the largest pair sum
  // the AVX2 path's int16 stage sees).
  for (int64_t k = 0; k < K; ++k) w.cb[k] = -127;
  for (float& v : w.scb) v = s(*rng);
  w.row_sum.resize(N);
  Int8RowSums(w.cb.data(), N, K, w.row_sum.data());
  w.aux.row_sum = w.row_sum.data();
  return w;
}

// The paths this CPU runs; the others are reported by SkipsPathsThisCpuLacks.
std::vector<CpuPath> SupportedPaths() {
  return SupportedCpuPaths({CpuPath::kPortable, CpuPath::kAvx2, CpuPath::kAvx512Vnni});
}

TEST(Int8QuantizeTest, MatchesTheContract) {
  std::mt19937 rng(7);
  for (const float threshold : {0.0f, 6.0f}) {
    for (const int64_t K : {1, 33, 100, 576, 1000}) {
      const int64_t M = 5;
      std::vector<float> x = MakeActivations(M, K, &rng);
      const RefQuant ref = ReferenceQuantize(x, M, K, threshold);
      for (const CpuPath path : SupportedPaths()) {
        SCOPED_TRACE(CpuPathName(path));
        Int8Activations a;
        a.Resize(M, K);
        std::fill(a.q.begin(), a.q.end(), int8_t{55});  // padding must be rewritten
        QuantizeActivationsInt8OnPath(path, x.data(), M, K, threshold, &a);
        ASSERT_EQ(a.stride % 64, 0);
        for (int64_t t = 0; t < M; ++t) {
          EXPECT_EQ(a.scale[t], ref.sca[t]) << "row " << t;
          for (int64_t k = 0; k < a.stride; ++k) {
            const int want = k < K ? ref.q[t * K + k] : 0;
            ASSERT_EQ(a.q[t * a.stride + k], want) << "t=" << t << " k=" << k << " K=" << K;
          }
          const int64_t ob = a.outlier_begin[t], oe = a.outlier_begin[t + 1];
          ASSERT_EQ(oe - ob, static_cast<int64_t>(ref.cols[t].size())) << "row " << t;
          for (int64_t e = ob; e < oe; ++e) {
            EXPECT_EQ(a.outlier_col[e], ref.cols[t][e - ob]);
            EXPECT_EQ(a.outlier_x[e], x[t * K + a.outlier_col[e]]);
          }
        }
      }
    }
  }
}

TEST(Int8QuantizeTest, RoundsHalfToEven) {
  // amax 127 makes the scale 1: q = nearbyint(x).
  const std::vector<float> x = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f};
  Int8Activations a;
  a.Resize(1, 8);
  QuantizeActivationsInt8(x.data(), 1, 8, 0.0f, &a);
  const std::vector<int> want = {127, 0, 2, 2, 0, -2, -2, 3};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(a.q[k], want[k]) << "x=" << x[k];
}

TEST(Int8QuantizeTest, OutliersAreDecidedPerRow) {
  // Row 0 has an outlier in column 1; row 1 does not, so row 1 keeps it.
  const std::vector<float> x = {1.0f, 9.0f, 2.0f, 1.0f, 0.5f, 2.0f};
  Int8Activations a;
  a.Resize(2, 3);
  QuantizeActivationsInt8(x.data(), 2, 3, 6.0f, &a);
  EXPECT_EQ(a.outlier_begin[1] - a.outlier_begin[0], 1);
  EXPECT_EQ(a.outlier_begin[2] - a.outlier_begin[1], 0);
  EXPECT_EQ(a.q[0 * a.stride + 1], 0);
  EXPECT_EQ(a.q[1 * a.stride + 1], 32);  // 0.5 * 127 / 2 = 31.75
}

// A NaN among a row's int8 entries (anywhere: vector lanes, the scalar tail),
// or an infinity when there is no threshold to make it an outlier: the row's
// scale is NaN and its q zeros on every path, so its products are NaN; the
// other row keeps its bits.
TEST(Int8QuantizeTest, ANonFiniteEntryMakesTheRowNaN) {
  std::mt19937 rng(9);
  const int64_t M = 2, K = 37, N = 5;
  const std::vector<float> clean = MakeActivations(M, K, &rng);
  const Int8Weights w = MakeWeights(N, K, &rng);
  const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
  for (const auto& [bad, threshold] : std::vector<std::pair<float, float>>{
           {kNaN, 6.0f}, {-kNaN, 6.0f}, {kNaN, 0.0f}, {kInf, 0.0f}, {-kInf, 0.0f}}) {
    for (int64_t k = 0; k < K; ++k) {
      std::vector<float> x = clean;
      x[k] = bad;
      for (const CpuPath path : SupportedPaths()) {
        const std::string where = std::string(CpuPathName(path)) + " value " + std::to_string(bad) +
                                  " threshold " + std::to_string(threshold) + " column " + std::to_string(k);
        Int8Activations a, ref;
        a.Resize(M, K);
        ref.Resize(M, K);
        QuantizeActivationsInt8OnPath(path, x.data(), M, K, threshold, &a);
        QuantizeActivationsInt8OnPath(path, clean.data(), M, K, threshold, &ref);
        ASSERT_TRUE(std::isnan(a.scale[0])) << where;
        for (int64_t j = 0; j < a.stride; ++j) ASSERT_EQ(a.q[j], 0) << where;
        ASSERT_EQ(a.scale[1], ref.scale[1]) << where;
        std::vector<float> y(M * N), y_ref(M * N);
        Int8MatMulOnPath(path, a, w.cb.data(), w.scb.data(), w.aux, y.data(), N, M, K, 0, N);
        Int8MatMulOnPath(path, ref, w.cb.data(), w.scb.data(), w.aux, y_ref.data(), N, M, K, 0, N);
        for (int64_t n = 0; n < N; ++n) {
          ASSERT_TRUE(std::isnan(y[n])) << where << " col " << n;
          ASSERT_EQ(y[N + n], y_ref[N + n]) << where << " row 1 col " << n;
        }
      }
    }
  }
}

class Int8MatMulTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, float>> {};

// Against a double-precision evaluation of the contract. The int32 part is
// exact, then fp32 rounds float(C) and three products (gamma_4 relative to the
// int8 part I); each outlier weight is rounded twice and its product once,
// and |O| additions sum them (gamma_{|O|+2} of S = sum |x w|); the final
// addition rounds once more: |y - ref| <= gamma_5 |I| + gamma_{|O|+3} S.
TEST_P(Int8MatMulTest, MatchesDoubleReference) {
  const auto [M, K, threshold] = GetParam();
  const int64_t N = 37;
  std::mt19937 rng(static_cast<unsigned>(M * 1000 + K * 3 + static_cast<int>(threshold)));
  const std::vector<float> x = MakeActivations(M, K, &rng);
  const Int8Weights w = MakeWeights(N, K, &rng);
  Int8Activations a;
  a.Resize(M, K);
  QuantizeActivationsInt8(x.data(), M, K, threshold, &a);
  const RefQuant ref = ReferenceQuantize(x, M, K, threshold);

  const int64_t ldy = N + 3;
  const double c = static_cast<double>(kInt8DequantScale);
  for (const CpuPath path : SupportedPaths()) {
    std::vector<float> y(M * ldy, -999.0f);
    // Two calls over split ranges, as threads make them.
    Int8MatMulOnPath(path, a, w.cb.data(), w.scb.data(), w.aux, y.data(), ldy, M, K, 0, 16);
    Int8MatMulOnPath(path, a, w.cb.data(), w.scb.data(), w.aux, y.data(), ldy, M, K, 16, N);
    for (int64_t t = 0; t < M; ++t) {
      for (int64_t n = N; n < ldy; ++n) ASSERT_EQ(y[t * ldy + n], -999.0f) << "wrote past n1";
      for (int64_t n = 0; n < N; ++n) {
        int64_t cexact = 0;
        for (int64_t k = 0; k < K; ++k) cexact += ref.q[t * K + k] * w.cb[n * K + k];
        const double scale = static_cast<double>(ref.sca[t]) * w.scb[n] * c;
        const double int_part = static_cast<double>(cexact) * scale;
        double out = 0, out_abs = 0;
        for (const int64_t k : ref.cols[t]) {
          const double term = static_cast<double>(x[t * K + k]) *
                              (w.cb[n * K + k] * static_cast<double>(w.scb[n]) / 127.0);
          out += term;
          out_abs += std::fabs(term);
        }
        const double got = y[t * ldy + n];
        const double tol = Gamma(5) * std::fabs(int_part) +
                           Gamma(static_cast<double>(ref.cols[t].size()) + 3) * out_abs;
        ASSERT_NEAR(got, int_part + out, tol) << CpuPathName(path) << " t=" << t << " n=" << n;
        // The int32 part is exact: without outliers, C comes back from y by
        // rounding while gamma_5 |C| < 1/2.
        if (ref.cols[t].empty() && scale > 0 && std::abs(cexact) < 1000000) {
          ASSERT_EQ(std::nearbyint(got / scale), static_cast<double>(cexact))
              << "t=" << t << " n=" << n;
        }
      }
    }
  }
}

// Every path computes the same exact C and runs the same epilogue, so their
// outputs are equal bit for bit.
TEST_P(Int8MatMulTest, BitIdenticalAcrossPaths) {
  const auto [M, K, threshold] = GetParam();
  const int64_t N = 37;
  std::mt19937 rng(static_cast<unsigned>(M * 77 + K + static_cast<int>(threshold)));
  const std::vector<float> x = MakeActivations(M, K, &rng);
  const Int8Weights w = MakeWeights(N, K, &rng);
  Int8Activations a;
  a.Resize(M, K);
  QuantizeActivationsInt8(x.data(), M, K, threshold, &a);
  std::vector<float> y(M * N), base(M * N);
  Int8MatMulOnPath(CpuPath::kPortable, a, w.cb.data(), w.scb.data(), w.aux, base.data(), N, M, K, 0,
                   N);
  for (const CpuPath path : SupportedPaths()) {
    Int8MatMulOnPath(path, a, w.cb.data(), w.scb.data(), w.aux, y.data(), N, M, K, 0, N);
    ASSERT_EQ(std::memcmp(y.data(), base.data(), y.size() * sizeof(float)), 0) << CpuPathName(path);
  }
}

// Outliers are per row, so a row quantized and multiplied alone gives the
// same bits as inside a batch.
TEST_P(Int8MatMulTest, RowsDoNotDependOnTheBatch) {
  const auto [M, K, threshold] = GetParam();
  const int64_t N = 37;
  std::mt19937 rng(static_cast<unsigned>(M * 5 + K + static_cast<int>(threshold)));
  const std::vector<float> x = MakeActivations(M, K, &rng);
  const Int8Weights w = MakeWeights(N, K, &rng);
  Int8Activations a;
  a.Resize(M, K);
  QuantizeActivationsInt8(x.data(), M, K, threshold, &a);
  std::vector<float> y(M * N);
  Int8Activations one;
  one.Resize(1, K);
  std::vector<float> row(N);
  for (const CpuPath path : SupportedPaths()) {
    Int8MatMulOnPath(path, a, w.cb.data(), w.scb.data(), w.aux, y.data(), N, M, K, 0, N);
    for (int64_t t = 0; t < M; ++t) {
      QuantizeActivationsInt8(x.data() + t * K, 1, K, threshold, &one);
      Int8MatMulOnPath(path, one, w.cb.data(), w.scb.data(), w.aux, row.data(), N, 1, K, 0, N);
      ASSERT_EQ(std::memcmp(row.data(), y.data() + t * N, N * sizeof(float)), 0)
          << CpuPathName(path) << " row " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8MatMulTest,
                         ::testing::Combine(::testing::Values<int64_t>(1, 3, 17),
                                            // K % 32 and K % 64 tails, and the SmolLM2 widths.
                                            ::testing::Values<int64_t>(1, 33, 100, 576, 1000, 1536),
                                            ::testing::Values(0.0f, 6.0f)),
                         [](const ::testing::TestParamInfo<Int8MatMulTest::ParamType>& info) {
                           return "M" + std::to_string(std::get<0>(info.param)) + "_K" +
                                  std::to_string(std::get<1>(info.param)) +
                                  (std::get<2>(info.param) > 0 ? "_outliers" : "_plain");
                         });

// The tests above run every path this CPU has; this one says which they skipped.
TEST(Int8MatMulPathsTest, SkipsPathsThisCpuLacks) {
  if (!CpuPathSupported(CpuPath::kAvx2)) GTEST_SKIP() << "no AVX2: the avx2 path was not tested";
  if (!CpuPathSupported(CpuPath::kAvx512Vnni)) {
    GTEST_SKIP() << "no AVX-512 VNNI on this CPU: the avx512vnni path was compiled but not run";
  }
}

TEST(Int8WeightAuxTest, RowSums) {
  const std::vector<int8_t> cb = {1, -2, 3, 127, -127, -127};
  int32_t row_sum[2] = {};
  Int8RowSums(cb.data(), 2, 3, row_sum);
  EXPECT_EQ(row_sum[0], 2);
  EXPECT_EQ(row_sum[1], -127);
}

}  // namespace
}  // namespace tierserve::cpu
