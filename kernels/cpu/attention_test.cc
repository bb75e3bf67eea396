#include "kernels/cpu/attention.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"

namespace tierserve::cpu {
namespace {

int64_t UlpDistance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::abs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));
}

TEST(AttentionExpTest, WithinTwoUlpOfTheRoundedValue) {
  int64_t worst = 0;
  for (float x = -87.0f; x <= 10.0f; x += 0.000731f) {
    float y = x;
    AttentionExp(&y, 1);
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    worst = std::max(worst, UlpDistance(y, want));
  }
  EXPECT_LE(worst, 2);
  float edge[5] = {0.0f, -87.5f, -1000.0f, -std::numeric_limits<float>::infinity(), -87.0f};
  AttentionExp(edge, 5);
  EXPECT_EQ(edge[0], 1.0f);
  EXPECT_EQ(edge[1], 0.0f);
  EXPECT_EQ(edge[2], 0.0f);
  EXPECT_EQ(edge[3], 0.0f);
  EXPECT_GT(edge[4], 0.0f);
}

TEST(AttentionExpTest, EightAtATimeEqualsOneAtATime) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-90.0f, 5.0f);
  std::vector<float> x(1003);
  for (float& v : x) v = u(rng);
  std::vector<float> batched = x;
  AttentionExp(batched.data(), static_cast<int64_t>(batched.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    float one = x[i];
    AttentionExp(&one, 1);
    ASSERT_EQ(std::memcmp(&one, &batched[i], 4), 0) << "x = " << x[i];
  }
}

// Keys and values of `n` positions, [pos][kv_dim], cut into blocks of
// block_tokens positions in the cache's layout (keys transposed) as elements
// of `dtype`; the slots past n hold NaN, which must never reach a result.
struct BlockedKv {
  std::vector<std::vector<uint16_t>> keys, values;  // 2-byte units: fp16 elements, or halves of fp32 ones
  std::vector<const void*> key_ptrs, value_ptrs;
  int64_t block_tokens;
  DType dtype;
  BlockedKv(const std::vector<float>& k, const std::vector<float>& v, int64_t n, int64_t kv_dim, int64_t bt,
            DType type = DType::kF32)
      : block_tokens(bt), dtype(type) {
    const int64_t units = KvElementBytes(type) / 2;
    for (int64_t p0 = 0; p0 < n; p0 += bt) {
      keys.emplace_back(static_cast<size_t>(bt * kv_dim * units));
      values.emplace_back(static_cast<size_t>(bt * kv_dim * units));
      for (int64_t r = 0; r < bt; ++r) {
        for (int64_t i = 0; i < kv_dim; ++i) {
          const bool valid = p0 + r < n;
          Put(keys.back(), i * bt + r, valid ? k[(p0 + r) * kv_dim + i] : NAN);
          Put(values.back(), r * kv_dim + i, valid ? v[(p0 + r) * kv_dim + i] : NAN);
        }
      }
    }
    for (auto& b : keys) key_ptrs.push_back(b.data());
    for (auto& b : values) value_ptrs.push_back(b.data());
  }
  void Put(std::vector<uint16_t>& block, int64_t index, float x) const {
    if (dtype == DType::kF16) {
      block[index] = F32ToF16(x);
    } else {
      std::memcpy(&block[2 * index], &x, sizeof x);
    }
  }
  KvView View(int64_t kv_dim, int64_t offset) const {
    return KvView{key_ptrs.data(), value_ptrs.data(), block_tokens, kv_dim, offset, dtype};
  }
};

// The attention output of `group` query heads of KV head `g`: every span,
// then each head's merge.
std::vector<float> Attend(const std::vector<float>& q, int64_t group, int64_t head_dim, const KvView& kv, int64_t n,
                          CpuPath path = BestCpuPath()) {
  const int64_t spans = AttentionSpans(n), pf = AttentionPartialFloats(head_dim);
  std::vector<float> partials(static_cast<size_t>(group * spans * pf));
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int64_t s = 0; s < spans; ++s) {
    AttendSpanOnPath(path, q.data(), 1, group, head_dim, scale, kv, n, s, &partials[s * pf], spans * pf);
  }
  std::vector<float> out(static_cast<size_t>(group * head_dim));
  for (int64_t j = 0; j < group; ++j) MergeSpans(&partials[j * spans * pf], spans, head_dim, &out[j * head_dim]);
  return out;
}

struct Case {
  int64_t n, head_dim, group, kv_heads;
};

class AttendTest : public ::testing::TestWithParam<Case> {};

// Against softmax attention in double precision: within a bound that grows
// with the operation count of one output (the dot, the exponentials, the
// sums over n positions), in units of fp32's rounding.
TEST_P(AttendTest, MatchesDoublePrecisionSoftmaxAttention) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  std::mt19937 rng(static_cast<uint32_t>(c.n * 31 + c.head_dim));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(c.n * kv_dim)), v(k.size()), q(static_cast<size_t>(c.group * c.head_dim));
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  for (float& x : q) x = 2.0f * normal(rng);  // peaked enough that the max matters
  const BlockedKv kv(k, v, c.n, kv_dim, 16);
  const int64_t g = c.kv_heads - 1;  // the last KV head: offsets are exercised
  const std::vector<float> got = Attend(q, c.group, c.head_dim, kv.View(kv_dim, g * c.head_dim), c.n);

  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const double u = std::ldexp(1.0, -24);
  const double m = static_cast<double>(c.head_dim + c.n + 16);
  for (int64_t j = 0; j < c.group; ++j) {
    std::vector<double> s(static_cast<size_t>(c.n));
    double mx = -INFINITY, max_abs_score = 0, max_abs_v = 0;
    for (int64_t p = 0; p < c.n; ++p) {
      double d = 0;
      for (int64_t i = 0; i < c.head_dim; ++i) d += double(q[j * c.head_dim + i]) * k[p * kv_dim + g * c.head_dim + i];
      s[p] = d * scale;
      mx = std::max(mx, s[p]);
      max_abs_score = std::max(max_abs_score, std::abs(s[p]));
    }
    double sum = 0;
    for (double& x : s) sum += (x = std::exp(x - mx));
    // Relative error of each weight: the score's (it enters exp as an
    // absolute error of m u |s|) plus the exponentials' and the sums'.
    const double weight_rel = m * u * (1 + 2 * max_abs_score) + 4 * m * u;
    for (int64_t i = 0; i < c.head_dim; ++i) {
      double want = 0;
      for (int64_t p = 0; p < c.n; ++p) {
        want += s[p] / sum * v[p * kv_dim + g * c.head_dim + i];
        max_abs_v = std::max(max_abs_v, std::abs(double(v[p * kv_dim + g * c.head_dim + i])));
      }
      ASSERT_NEAR(got[j * c.head_dim + i], want, 2 * weight_rel * max_abs_v)
          << "head " << j << " dim " << i << " n " << c.n;
    }
  }
}

// Keys and values of c.n positions of c.kv_heads heads, and q_heads query
// heads, uniform in [-1, 1] (queries in [-3, 3], so that softmaxes peak).
std::tuple<std::vector<float>, std::vector<float>, std::vector<float>> RandomInputs(const Case& c, int64_t q_heads,
                                                                                   uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(c.n * c.kv_heads * c.head_dim)), v(k.size());
  std::vector<float> q(static_cast<size_t>(q_heads * c.head_dim));
  for (float& x : k) x = uni(rng);
  for (float& x : v) x = uni(rng);
  for (float& x : q) x = 3.0f * uni(rng);
  return {k, v, q};
}

// The cache's block size changes where rows are, never the bits.
TEST_P(AttendTest, BlockSizeDoesNotChangeTheBits) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  const auto [k, v, q] = RandomInputs(c, c.group, 3);
  const std::vector<float> want = Attend(q, c.group, c.head_dim, BlockedKv(k, v, c.n, kv_dim, c.n).View(kv_dim, 0), c.n);
  for (int64_t bt : {1, 7, 16, 48}) {
    const std::vector<float> got =
        Attend(q, c.group, c.head_dim, BlockedKv(k, v, c.n, kv_dim, bt).View(kv_dim, 0), c.n);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << "block_tokens " << bt;
  }
}

// A query head's output is the same bits whether its group has one head or
// several (the heads share reads, not arithmetic).
TEST_P(AttendTest, GroupedHeadsEqualOneHeadAtATime) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  const auto [k, v, q] = RandomInputs(c, c.group, 5);
  const BlockedKv kv(k, v, c.n, kv_dim, 16);
  const std::vector<float> together = Attend(q, c.group, c.head_dim, kv.View(kv_dim, 0), c.n);
  for (int64_t j = 0; j < c.group; ++j) {
    const std::vector<float> qj(q.begin() + j * c.head_dim, q.begin() + (j + 1) * c.head_dim);
    const std::vector<float> alone = Attend(qj, 1, c.head_dim, kv.View(kv_dim, 0), c.n);
    ASSERT_EQ(std::memcmp(alone.data(), &together[j * c.head_dim], alone.size() * sizeof(float)), 0) << "head " << j;
  }
}

// All KV heads of a row in one call give each query head the bits it gets
// from a call for its KV head alone.
TEST_P(AttendTest, AllKvHeadsAtOnceEqualOneKvHeadAtATime) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim, heads = c.kv_heads * c.group;
  const auto [k, v, q] = RandomInputs(c, heads, 9);
  const BlockedKv kv(k, v, c.n, kv_dim, 16);
  const int64_t spans = AttentionSpans(c.n), pf = AttentionPartialFloats(c.head_dim);
  const float scale = 0.125f;
  for (int64_t s = 0; s < spans; ++s) {
    std::vector<float> all(static_cast<size_t>(heads * pf)), one(static_cast<size_t>(c.group * pf));
    AttendSpan(q.data(), c.kv_heads, c.group, c.head_dim, scale, kv.View(kv_dim, 0), c.n, s, all.data(), pf);
    for (int64_t g = 0; g < c.kv_heads; ++g) {
      AttendSpan(&q[g * c.group * c.head_dim], 1, c.group, c.head_dim, scale, kv.View(kv_dim, g * c.head_dim), c.n,
                 s, one.data(), pf);
      ASSERT_EQ(std::memcmp(one.data(), &all[g * c.group * pf], one.size() * sizeof(float)), 0)
          << "KV head " << g << ", span " << s;
    }
  }
}

// Every SIMD path this CPU has gives the portable path's bits, for both
// element types, a block size that makes tiles straddle blocks and one that
// holds two tiles.
TEST_P(AttendTest, EveryPathGivesThePortableBits) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  const auto [k, v, q] = RandomInputs(c, c.group, 13);
  for (DType dtype : {DType::kF32, DType::kF16}) {
    for (int64_t bt : {16, 7, 32}) {
      const BlockedKv kv(k, v, c.n, kv_dim, bt, dtype);
      const KvView view = kv.View(kv_dim, (c.kv_heads - 1) * c.head_dim);
      const std::vector<float> want = Attend(q, c.group, c.head_dim, view, c.n, CpuPath::kPortable);
      for (CpuPath path : {CpuPath::kAvx2, CpuPath::kAvx512Vnni}) {
        if (!CpuPathSupported(path)) continue;
        const std::vector<float> got = Attend(q, c.group, c.head_dim, view, c.n, path);
        ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
            << CpuPathName(path) << ", " << DTypeName(dtype) << ", block_tokens " << bt;
      }
    }
  }
}

// An fp16 cache is an fp32 cache of the rounded keys and values: the
// kernel widens each element exactly, so the bits are the same.
TEST_P(AttendTest, Fp16CacheEqualsFp32CacheOfTheRoundedValues) {
  const Case c = GetParam();
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  auto [k, v, q] = RandomInputs(c, c.group, 17);
  const BlockedKv half(k, v, c.n, kv_dim, 16, DType::kF16);
  for (float& x : k) x = F16ToF32(F32ToF16(x));
  for (float& x : v) x = F16ToF32(F32ToF16(x));
  const BlockedKv rounded(k, v, c.n, kv_dim, 16, DType::kF32);
  const std::vector<float> want = Attend(q, c.group, c.head_dim, rounded.View(kv_dim, 0), c.n);
  const std::vector<float> got = Attend(q, c.group, c.head_dim, half.View(kv_dim, 0), c.n);
  ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttendTest,
    ::testing::Values(Case{1, 64, 3, 3}, Case{15, 64, 3, 3}, Case{16, 64, 3, 3}, Case{17, 64, 3, 3},
                      Case{255, 64, 3, 3}, Case{256, 64, 3, 3}, Case{257, 64, 3, 3}, Case{1000, 64, 3, 3},
                      Case{2049, 64, 1, 2}, Case{40, 16, 2, 2}, Case{300, 12, 2, 1}, Case{33, 128, 4, 2},
                      Case{70, 32, 7, 1}, Case{50, 80, 5, 2}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return "n" + std::to_string(info.param.n) + "_d" + std::to_string(info.param.head_dim) + "_g" +
             std::to_string(info.param.group);
    });

}  // namespace
}  // namespace tierserve::cpu
