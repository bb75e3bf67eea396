// LLM.int8()'s outlier split, shown on one layer: activation columns with a
// few huge values (the "outlier features" of large models) ruin the int8
// quantization of every other column of their row unless they are split off.
#include "runtime/quant/int8_format.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/bnb_quantize.h"
#include "runtime/format/safetensors.h"
#include "runtime/format/weight_store.h"

namespace tierserve {
namespace {

constexpr int64_t kN = 64, kK = 256, kM = 4;
constexpr float kOutlier = 60.0f;
constexpr int64_t kOutlierCols[] = {7, 100, 201};

// Relative L2 error of the layer's output against exact (double) math on the
// same dequantized weights: only the activations' quantization is measured.
double ActivationError(const Int8Format& f, const std::vector<float>& x) {
  std::vector<float> w(kN * kK);
  cpu::DequantizeInt8Rows(f.cb(), f.scb(), kN, kK, w.data());
  std::vector<float> y(kM * kN);
  auto prepared = f.Prepare(x.data(), kM, nullptr);
  f.ForwardRows(x.data(), prepared.get(), kM, y.data(), kN, 0, kN);
  double err = 0, norm = 0;
  for (int64_t m = 0; m < kM; ++m) {
    for (int64_t n = 0; n < kN; ++n) {
      double ref = 0;
      for (int64_t k = 0; k < kK; ++k) ref += double{x[m * kK + k]} * w[n * kK + k];
      err += (y[m * kN + n] - ref) * (y[m * kN + n] - ref);
      norm += ref * ref;
    }
  }
  return std::sqrt(err / norm);
}

TEST(Int8FormatTest, OutlierSplitKeepsTheErrorOfTheOutlierFreeCase) {
  std::mt19937 rng(7);
  std::normal_distribution<float> wd(0.0f, 0.05f), xd(0.0f, 1.0f);
  std::vector<float> w(kN * kK), x(kM * kK);
  for (float& v : w) v = wd(rng);
  for (float& v : x) v = std::clamp(xd(rng), -3.0f, 3.0f);
  std::vector<float> with_outliers = x;
  for (int64_t m = 0; m < kM; ++m)
    for (int64_t c : kOutlierCols) with_outliers[m * kK + c] = (m % 2 ? -1 : 1) * kOutlier;

  const Int8Format split(w.data(), kN, kK, 6.0f), no_split(w.data(), kN, kK, 0.0f);
  const double clean = ActivationError(split, x);
  const double outliers_split = ActivationError(split, with_outliers);
  const double outliers_unsplit = ActivationError(no_split, with_outliers);
  // Split off, the outliers are multiplied in fp32 and the other columns are
  // quantized exactly as without outliers: the absolute error is that of the
  // clean case, and the output only grows, so the relative error cannot.
  EXPECT_LE(outliers_split, clean);
  // Unsplit, the row's scale grows from |x| <= 3 to 60: a 20x coarser step
  // for every column. Half of that is far beyond any rounding luck.
  EXPECT_GE(outliers_unsplit, 10 * outliers_split)
      << "clean " << clean << ", split " << outliers_split << ", unsplit " << outliers_unsplit;
  // Without outliers the split changes nothing.
  EXPECT_EQ(ActivationError(no_split, x), clean);
}

// bitsandbytes' Linear8bitLt (threshold 0: no outliers, so batch-wide and
// per-token outlier columns coincide) on the goldens it wrote: its weight
// state is quantized from the fp16 cast of W, as here.
TEST(Int8FormatTest, MatchesBitsandbytesLinear8bitLt) {
  absl::StatusOr<std::unique_ptr<WeightStore>> g = OpenSafetensors("tests/data/bnb/goldens.safetensors");
  ASSERT_TRUE(g.ok()) << g.status();
  auto read = [&](const std::string& name) {
    const TensorView* t = (*g)->Find(name);
    EXPECT_NE(t, nullptr) << name;
    std::vector<float> v(t ? t->NumElements() : 0);
    if (t) {
      EXPECT_TRUE(ReadAsF32(*t, v.data(), t->NumElements()).ok());
    }
    return v;
  };
  const TensorView* cbt = (*g)->Find("lin8.CB");
  ASSERT_NE(cbt, nullptr);
  const int64_t N = cbt->shape[0], K = cbt->shape[1];
  std::vector<float> cb = read("lin8.CB"), scb = read("lin8.SCB"), x = read("lin.x"),
                     want = read("lin8.t0.out");
  const int64_t M = static_cast<int64_t>(x.size()) / K;
  // The weights that dequantize to exactly bitsandbytes' state requantize to it.
  std::vector<float> w(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) w[n * K + k] = cb[n * K + k] * scb[n] / 127.0f;
  const Int8Format f(w.data(), N, K, 0.0f);
  for (int64_t i = 0; i < N * K; ++i) ASSERT_EQ(f.cb()[i], cb[i]) << i;
  std::vector<float> y(M * N);
  auto prepared = f.Prepare(x.data(), M, nullptr);
  f.ForwardRows(x.data(), prepared.get(), M, y.data(), N, 0, N);
  double worst = 0;
  for (int64_t i = 0; i < M * N; ++i) worst = std::max(worst, std::fabs(double{y[i]} - want[i]) / std::max(1e-30, std::fabs(double{want[i]})));
  // C * SCA * SCB * k here, C * (SCA * SCB) * k there: a few ulps apart.
  EXPECT_LE(worst, 4 * 6e-8) << "worst relative difference";
}

}  // namespace
}  // namespace tierserve
