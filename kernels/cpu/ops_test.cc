#include "kernels/cpu/ops.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve::cpu {
namespace {

TEST(OpsTest, RmsNormHandComputed) {
  // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5
  const float x[4] = {1, -2, 3, 4};
  const float w[4] = {1, 2, 0.5f, -1};
  float y[4];
  RmsNorm(x, w, y, 4, 0.0f);
  const float r = 1.0f / std::sqrt(7.5f);
  EXPECT_NEAR(y[0], 1 * r, 1e-6);
  EXPECT_NEAR(y[1], -4 * r, 1e-6);
  EXPECT_NEAR(y[2], 1.5f * r, 1e-6);
  EXPECT_NEAR(y[3], -4 * r, 1e-6);
}

TEST(OpsTest, LayerNormHandComputed) {
  // mean 2.5, var = (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25
  const float x[4] = {1, 2, 3, 4};
  const float w[4] = {1, 1, 2, 1};
  const float b[4] = {0, 1, 0, 0};
  float y[4];
  LayerNorm(x, w, b, y, 4, 0.0f);
  const float s = 1.0f / std::sqrt(1.25f);
  EXPECT_NEAR(y[0], -1.5f * s, 1e-6);
  EXPECT_NEAR(y[1], -0.5f * s + 1, 1e-6);
  EXPECT_NEAR(y[2], 2 * 0.5f * s, 1e-6);
  EXPECT_NEAR(y[3], 1.5f * s, 1e-6);
}

TEST(OpsTest, SiluMulAndGelu) {
  float g[2] = {0.0f, 2.0f};
  const float u[2] = {3.0f, 0.5f};
  SiluMul(g, u, 2);
  EXPECT_NEAR(g[0], 0.0f, 1e-7);
  EXPECT_NEAR(g[1], 2.0f / (1.0f + std::exp(-2.0f)) * 0.5f, 1e-6);
  // gelu_tanh(1) = 0.5 (1 + tanh(0.7978845608 * 1.044715)) = 0.8411920
  float x[2] = {1.0f, 0.0f};
  GeluTanh(x, 2);
  EXPECT_NEAR(x[0], 0.8411920f, 1e-6);
  EXPECT_EQ(x[1], 0.0f);
}

// Over the range activations take, within a few ulp of the double-precision
// value, and finite for any input (the exponential is of -|g| only). Below
// g = -87 the exponential is 0 (results under 1e-35 become 0: the absolute
// slack).
TEST(OpsTest, SiluMulIsCloseToTheExactValueEverywhere) {
  std::vector<float> g, u;
  for (float x = -120.0f; x <= 120.0f; x += 0.01237f) {
    g.push_back(x);
    u.push_back(1.0f + 0.001f * x);
  }
  g.push_back(-std::numeric_limits<float>::max());
  u.push_back(1.0f);
  g.push_back(std::numeric_limits<float>::max());
  u.push_back(0.5f);
  std::vector<float> out = g;
  SiluMul(out.data(), u.data(), static_cast<int64_t>(out.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double x = g[i];
    const double want = x / (1.0 + std::exp(-x)) * u[i];
    ASSERT_TRUE(std::isfinite(out[i])) << "g = " << g[i];
    ASSERT_NEAR(out[i], want, 8 * std::numeric_limits<float>::epsilon() * std::fabs(want) + 1e-35) << "g = " << g[i];
  }
}

TEST(OpsTest, RopeRotatesHalves) {
  // One head of dim 4: pairs (0,2) and (1,3).
  float x[4] = {1, 2, 3, 4};
  const float c0 = std::cos(0.5f), s0 = std::sin(0.5f), c1 = std::cos(0.25f), s1 = std::sin(0.25f);
  const float cs[4] = {c0, c1, s0, s1};
  RopeRotateHalf(x, 1, 4, cs);
  EXPECT_NEAR(x[0], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(x[2], 3 * c0 + 1 * s0, 1e-6);
  EXPECT_NEAR(x[1], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(x[3], 4 * c1 + 2 * s1, 1e-6);
}

}  // namespace
}  // namespace tierserve::cpu
