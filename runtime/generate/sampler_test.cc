#include "runtime/generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

constexpr float kInf = std::numeric_limits<float>::infinity();

Sampler MakeSampler(const SamplingParams& params) {
  absl::StatusOr<Sampler> sampler = Sampler::Create(params);
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  return *std::move(sampler);
}

// Counts of each id over `draws` samples.
std::vector<int> Histogram(Sampler& sampler, const std::vector<float>& logits, int draws,
                           const std::vector<int32_t>& previous = {}) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const int32_t id = sampler.Sample(logits, previous).id;
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int32_t>(logits.size()));
    if (id >= 0 && id < static_cast<int32_t>(logits.size())) ++counts[id];
  }
  return counts;
}

// Plain double-precision softmax of x / temperature, the reference.
std::vector<double> Softmax(const std::vector<float>& logits, double temperature = 1.0) {
  double max = -std::numeric_limits<double>::infinity();
  for (float x : logits) max = std::max(max, static_cast<double>(x));
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (double& v : p) v /= sum;
  return p;
}

double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " has probability 0";
      continue;
    }
    const double expected = n * probs[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

// Upper 0.1% point of the chi-square distribution with `dof` degrees of
// freedom: a correct sampler exceeds it with probability 0.001 for a random
// seed; the seeds below are fixed, so each test is deterministic. Tabulated
// up to 6, then the Wilson-Hilferty approximation (within 1% there).
double ChiSquareCritical001(int dof) {
  static const double kTable[] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458};
  if (dof <= 6) return kTable[dof];
  const double a = 2.0 / (9.0 * dof);
  const double z = 3.0902;  // upper 0.1% point of the standard normal
  return dof * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Chi-square test of `counts` against `probs`, with the categories expected
// fewer than 5 times pooled into one, as the approximation requires.
// Returns the statistic divided by its 0.1% critical value: < 1 passes.
double ChiSquareRatio(const std::vector<int>& counts, const std::vector<double>& probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  std::vector<int> c;
  std::vector<double> p;
  int pooled_count = 0;
  double pooled_prob = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " has probability 0";
    } else if (n * probs[i] < 5) {
      pooled_count += counts[i];
      pooled_prob += probs[i];
    } else {
      c.push_back(counts[i]);
      p.push_back(probs[i]);
    }
  }
  if (pooled_prob > 0) {
    c.push_back(pooled_count);
    p.push_back(pooled_prob);
  }
  if (c.size() < 2) return 0;
  return ChiSquare(c, p) / ChiSquareCritical001(static_cast<int>(c.size()) - 1);
}

// The pipeline of the header, written plainly in double precision: penalty,
// temperature, top_k (ties kept), top_p (by descending probability, ties by
// id), min_p. Returns the final distribution over all ids. `margin` receives
// how close the top_p and min_p decisions came to their thresholds.
std::vector<double> ReferenceDistribution(std::vector<float> logits,
                                          const std::vector<int32_t>& previous,
                                          const SamplingParams& p, double* margin) {
  const size_t v = logits.size();
  std::vector<bool> done(v, false);
  for (int32_t id : previous) {
    if (id < 0 || static_cast<size_t>(id) >= v || done[id]) continue;
    done[id] = true;
    logits[id] = logits[id] < 0 ? logits[id] * p.repetition_penalty
                                : logits[id] / p.repetition_penalty;
  }
  std::vector<bool> kept(v, true);
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < v) {
    std::vector<float> sorted = logits;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    for (size_t i = 0; i < v; ++i) kept[i] = logits[i] >= sorted[p.top_k - 1];
  }
  auto renormalized = [&] {
    std::vector<double> q = Softmax(logits, p.temperature);
    double sum = 0;
    for (size_t i = 0; i < v; ++i) sum += kept[i] ? q[i] : 0;
    for (size_t i = 0; i < v; ++i) q[i] = kept[i] ? q[i] / sum : 0;
    return q;
  };
  *margin = 1.0;
  std::vector<double> q = renormalized();
  if (p.top_p < 1) {
    std::vector<int32_t> order(v);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return q[a] > q[b] || (q[a] == q[b] && a < b);
    });
    double before = 0;
    for (int32_t id : order) {
      if (q[id] == 0) continue;
      *margin = std::min(*margin, std::abs(before - p.top_p));
      kept[id] = before < p.top_p;
      before += q[id];
    }
    q = renormalized();
  }
  if (p.min_p > 0) {
    const double top = *std::max_element(q.begin(), q.end());
    for (size_t i = 0; i < v; ++i) {
      if (q[i] == 0) continue;
      *margin = std::min(*margin, std::abs(q[i] / top - p.min_p));
      kept[i] = kept[i] && q[i] >= p.min_p * top;
    }
    q = renormalized();
  }
  return q;
}

std::vector<float> RandomLogits(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

std::vector<float> LogOf(const std::vector<double>& probs, float offset) {
  std::vector<float> v;
  for (double p : probs) v.push_back(static_cast<float>(std::log(p)) + offset);
  return v;
}

TEST(SamplerTest, GreedyPicksArgmaxAndReportsRawLogprob) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s = MakeSampler(p);
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  const SampledToken t = s.Sample(logits, {});
  EXPECT_EQ(t.id, 1);
  const double lse = std::log(std::exp(0.1) + std::exp(2.0) + std::exp(-1.0) + std::exp(1.9));
  EXPECT_NEAR(t.logprob, 2.0 - lse, 1e-6);
  EXPECT_TRUE(t.top_logprobs.empty());
}

TEST(SamplerTest, GreedyTiesGoToLowestId) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s = MakeSampler(p);
  EXPECT_EQ(s.Sample(std::vector<float>{1, 3, 3, 2}, {}).id, 1);
  EXPECT_EQ(s.Sample(std::vector<float>{-4, -4, -4}, {}).id, 0);
  EXPECT_EQ(s.Sample(std::vector<float>{0, 7, 1, 7}, {}).id, 1);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferent) {
  const std::vector<float> flat(1000, 0.0f);
  SamplingParams p;
  p.seed = 42;
  Sampler a = MakeSampler(p);
  Sampler b = MakeSampler(p);
  p.seed = 43;
  Sampler c = MakeSampler(p);
  std::vector<int32_t> seq_a, seq_b, seq_c;
  for (int i = 0; i < 100; ++i) {
    seq_a.push_back(a.Sample(flat, {}).id);
    seq_b.push_back(b.Sample(flat, {}).id);
    seq_c.push_back(c.Sample(flat, {}).id);
  }
  EXPECT_EQ(seq_a, seq_b);
  // 100 uniform draws over 1000 ids agree by chance with probability 1e-300.
  EXPECT_NE(seq_a, seq_c);
}

TEST(SamplerTest, TopK1EqualsGreedy) {
  const std::vector<float> logits = RandomLogits(5000, 7, -2.0f, 2.0f);
  const int32_t argmax =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  SamplingParams p;
  p.top_k = 1;
  p.temperature = 5.0f;  // flatten: without top_k, argmax would rarely be drawn
  p.seed = 3;
  Sampler s = MakeSampler(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(logits, {}).id, argmax);
}

TEST(SamplerTest, TopKKeepsExactlyTheKLargest) {
  std::vector<float> logits(10);
  for (int i = 0; i < 10; ++i) logits[i] = static_cast<float>((i * 7) % 10);  // a permutation of 0..9
  SamplingParams p;
  p.top_k = 3;
  p.seed = 11;
  Sampler s = MakeSampler(p);
  const std::vector<int> counts = Histogram(s, logits, 3000);
  for (int i = 0; i < 10; ++i) {
    if (logits[i] >= 7.0f) {
      EXPECT_GT(counts[i], 0) << "id " << i;
    } else {
      EXPECT_EQ(counts[i], 0) << "id " << i;
    }
  }
  // The survivors are drawn in proportion to their softmax, renormalized.
  std::vector<float> masked = logits;
  for (float& x : masked) {
    if (x < 7.0f) x = -kInf;
  }
  EXPECT_LT(ChiSquare(counts, Softmax(masked)), ChiSquareCritical001(2));
}

TEST(SamplerTest, TopKKeepsTiesWithTheKthLogit) {
  // As HF and vLLM: everything >= the k-th largest logit survives.
  SamplingParams p;
  p.top_k = 2;
  p.seed = 5;
  Sampler s = MakeSampler(p);
  const std::vector<int> counts = Histogram(s, {5.0f, 4.0f, 4.0f, 3.9f}, 2000);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(SamplerTest, TopKOnLargeVocabularyBothSelectionPaths) {
  const std::vector<float> logits = RandomLogits(50000, 21, -3.0f, 3.0f);
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (int k : {50, 1000}) {  // heap selection, then nth_element
    const float kth = sorted[k - 1];
    SamplingParams p;
    p.top_k = k;
    p.seed = 9;
    Sampler s = MakeSampler(p);
    std::set<int32_t> seen;
    for (int i = 0; i < (k == 50 ? 2000 : 300); ++i) {
      const int32_t id = s.Sample(logits, {}).id;
      ASSERT_GE(logits[id], kth) << "k=" << k << " drew id " << id;
      seen.insert(id);
    }
    // The 50 largest of 50000 uniform logits lie within ~0.01 of each other,
    // so each is drawn with probability ~1/50 and missed by 2000 draws with
    // probability ~e^-40.
    if (k == 50) {
      EXPECT_EQ(seen.size(), 50u);
    }
  }
}

TEST(SamplerTest, TopPKeepsTheSmallestNucleus) {
  // Probabilities by id: 0.3, 0.05, 0.5, 0.15; descending: 2, 0, 3, 1.
  const std::vector<double> probs = {0.3, 0.05, 0.5, 0.15};
  const std::vector<float> logits = LogOf(probs, 1.5f);
  struct Case {
    float top_p;
    std::vector<bool> kept;
  };
  // Mass before each ranked token: 0, 0.5, 0.8, 0.95; a token is kept while
  // that is below top_p.
  const Case cases[] = {
      {0.4f, {false, false, true, false}},
      {0.75f, {true, false, true, false}},
      {0.85f, {true, false, true, true}},
      {0.99f, {true, true, true, true}},
  };
  for (const Case& c : cases) {
    SamplingParams p;
    p.top_p = c.top_p;
    p.seed = 17;
    Sampler s = MakeSampler(p);
    const std::vector<int> counts = Histogram(s, logits, 4000);
    std::vector<double> expected(4, 0.0);
    double kept_mass = 0;
    for (int i = 0; i < 4; ++i) {
      if (c.kept[i]) kept_mass += probs[i];
    }
    int dof = -1;
    for (int i = 0; i < 4; ++i) {
      if (c.kept[i]) {
        EXPECT_GT(counts[i], 0) << "top_p " << c.top_p << " id " << i;
        expected[i] = probs[i] / kept_mass;
        ++dof;
      } else {
        EXPECT_EQ(counts[i], 0) << "top_p " << c.top_p << " id " << i;
      }
    }
    if (dof > 0) {
      EXPECT_LT(ChiSquare(counts, expected), ChiSquareCritical001(dof)) << c.top_p;
    }
  }
}

TEST(SamplerTest, TopPOnLargeVocabularyMatchesAFullSort) {
  // 12 prominent tokens scattered over a 60000-token vocabulary of small logits:
  // the nucleus boundary is found by the radix levels, not a full sort.
  std::vector<float> logits = RandomLogits(60000, 33, -6.0f, 0.0f);
  const int32_t prominent[] = {59999, 17, 40000, 3, 31337, 12000, 29, 50505, 777, 45000, 8, 22222};
  for (int j = 0; j < 12; ++j) logits[prominent[j]] = 9.0f - 0.25f * j;

  const std::vector<double> probs = Softmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  });
  const float top_p = 0.6f;
  std::set<int32_t> nucleus;
  double before = 0;
  for (int32_t id : order) {
    if (before >= top_p) break;
    nucleus.insert(id);
    before += probs[id];
  }
  // The test is only meaningful if the boundary is not a rounding-level call.
  ASSERT_GT(before - top_p, 1e-4);
  ASSERT_GE(nucleus.size(), 3u);
  ASSERT_LE(nucleus.size(), 12u);

  SamplingParams p;
  p.top_p = top_p;
  p.seed = 99;
  Sampler s = MakeSampler(p);
  std::set<int32_t> seen;
  for (int i = 0; i < 1500; ++i) {
    const int32_t id = s.Sample(logits, {}).id;
    ASSERT_TRUE(nucleus.count(id)) << "drew id " << id << " outside the nucleus";
    seen.insert(id);
  }
  EXPECT_EQ(seen, nucleus);
}

TEST(SamplerTest, TopPOnAFlatDistributionBreaksTiesByLowestId) {
  // 20000 equal weights, top_p = 0.5: exactly ids 0..9999 form the nucleus.
  const std::vector<float> logits(20000, 0.0f);
  SamplingParams p;
  p.top_p = 0.5f;
  p.seed = 4;
  Sampler s = MakeSampler(p);
  int32_t max_id = -1;
  for (int i = 0; i < 400; ++i) max_id = std::max(max_id, s.Sample(logits, {}).id);
  EXPECT_LT(max_id, 10000);
  EXPECT_GE(max_id, 9600);  // missed by 400 uniform draws with probability 0.96^400
}

TEST(SamplerTest, MinPDropsTokensBelowAFractionOfTheTop) {
  // Probabilities by id: 0.2, 0.4, 0.1, 0.3.
  const std::vector<double> probs = {0.2, 0.4, 0.1, 0.3};
  const std::vector<float> logits = LogOf(probs, -2.0f);
  struct Case {
    float min_p;
    std::vector<bool> kept;
  };
  const Case cases[] = {
      {0.4f, {true, true, false, true}},   // threshold 0.16
      {0.6f, {false, true, false, true}},  // threshold 0.24
      {0.9f, {false, true, false, false}}, // threshold 0.36
  };
  for (const Case& c : cases) {
    SamplingParams p;
    p.min_p = c.min_p;
    p.seed = 23;
    Sampler s = MakeSampler(p);
    const std::vector<int> counts = Histogram(s, logits, 2000);
    for (int i = 0; i < 4; ++i) {
      if (c.kept[i]) {
        EXPECT_GT(counts[i], 0) << "min_p " << c.min_p << " id " << i;
      } else {
        EXPECT_EQ(counts[i], 0) << "min_p " << c.min_p << " id " << i;
      }
    }
  }
}

TEST(SamplerTest, FrequenciesMatchSoftmaxAtTemperatureOne) {
  const std::vector<double> probs = {0.05, 0.1, 0.15, 0.2, 0.22, 0.28};
  const std::vector<float> logits = LogOf(probs, 3.0f);  // softmax ignores the offset
  SamplingParams p;
  p.seed = 12345;
  Sampler s = MakeSampler(p);
  const std::vector<int> counts = Histogram(s, logits, 20000);
  EXPECT_LT(ChiSquare(counts, probs), ChiSquareCritical001(5));
}

TEST(SamplerTest, TemperatureSharpensAndFlattens) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  double previous_top_share = 1.0;
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 77;
    Sampler s = MakeSampler(p);
    const std::vector<int> counts = Histogram(s, logits, 5000);
    EXPECT_LT(ChiSquare(counts, Softmax(logits, t)), ChiSquareCritical001(2)) << "T=" << t;
    // Top-token shares are 0.867, 0.665, 0.506: far apart compared with the
    // sampling error of 5000 draws (standard deviation <= 0.007).
    const double top_share = counts[2] / 5000.0;
    EXPECT_LT(top_share, previous_top_share) << "T=" << t;
    previous_top_share = top_share;
  }
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  // Penalty 2 on ids 0 and 1 (id 0 listed twice, penalized once):
  // 2.0 -> 1.0, -1.0 -> -2.0; ids 2 and 3 untouched.
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 1.9f};
  const std::vector<int32_t> previous = {0, 1, 0};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.seed = 8;
  Sampler s = MakeSampler(p);
  const std::vector<int> counts = Histogram(s, logits, 20000, previous);
  EXPECT_LT(ChiSquare(counts, Softmax({1.0f, -2.0f, 0.5f, 1.9f})), ChiSquareCritical001(3));

  p.temperature = 0;
  Sampler greedy = MakeSampler(p);
  const SampledToken t = greedy.Sample(logits, previous);
  EXPECT_EQ(t.id, 3);  // 1.9 now beats 2.0 / 2
  // The reported logprob is the raw model's, not the penalized one.
  const double lse = std::log(std::exp(2.0) + std::exp(-1.0) + std::exp(0.5) + std::exp(1.9));
  EXPECT_NEAR(t.logprob, 1.9 - lse, 1e-6);
}

TEST(SamplerTest, RepetitionPenaltyAppliesOncePerDistinctToken) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s = MakeSampler(p);
  // Once: 2.0 -> 1.0 > 0.8. Applied three times it would be 0.25 < 0.8.
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 0.8f}, std::vector<int32_t>{0, 0, 0}).id, 0);
  // Negative logits move away from zero: -1.0 -> -2.0 < -1.5.
  EXPECT_EQ(s.Sample(std::vector<float>{-1.0f, -1.5f}, std::vector<int32_t>{0}).id, 1);
  // The marks of one call do not leak into the next.
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.5f}, std::vector<int32_t>{}).id, 0);
  // Ids outside the vocabulary are ignored.
  EXPECT_EQ(s.Sample(std::vector<float>{2.0f, 1.5f}, std::vector<int32_t>{-1, 2, 1000}).id, 0);

  p.repetition_penalty = 0.5f;  // below 1 favours repeats
  Sampler favour = MakeSampler(p);
  EXPECT_EQ(favour.Sample(std::vector<float>{1.0f, 1.5f}, std::vector<int32_t>{0}).id, 0);
}

TEST(SamplerTest, LogprobsAreTheRawLogSoftmaxSortedAndNormalized) {
  const std::vector<float> logits = RandomLogits(8, 5, -4.0f, 4.0f);
  const std::vector<double> probs = Softmax(logits);
  SamplingParams p;
  p.logprobs = 8;
  p.temperature = 0.7f;  // the reported values do not depend on it
  p.top_k = 3;
  p.seed = 1;
  Sampler s = MakeSampler(p);
  const SampledToken t = s.Sample(logits, {});
  ASSERT_EQ(t.top_logprobs.size(), 8u);
  double total = 0;
  for (size_t i = 0; i < t.top_logprobs.size(); ++i) {
    const TokenLogprob& alt = t.top_logprobs[i];
    EXPECT_NEAR(alt.logprob, std::log(probs[alt.id]), 1e-5);
    if (i > 0) {
      EXPECT_GE(t.top_logprobs[i - 1].logprob, alt.logprob);
    }
    total += std::exp(alt.logprob);
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  EXPECT_NEAR(t.logprob, std::log(probs[t.id]), 1e-5);
}

TEST(SamplerTest, TopLogprobsOnLargeVocabularyAndTies) {
  std::vector<float> logits = RandomLogits(50000, 13, -5.0f, 5.0f);
  logits[40000] = 7.0f;
  logits[123] = 7.0f;  // tie: the lower id comes first
  logits[999] = 6.5f;
  SamplingParams p;
  p.logprobs = 3;
  p.temperature = 0;
  Sampler s = MakeSampler(p);
  const SampledToken t = s.Sample(logits, {});
  EXPECT_EQ(t.id, 123);
  ASSERT_EQ(t.top_logprobs.size(), 3u);
  EXPECT_EQ(t.top_logprobs[0].id, 123);
  EXPECT_EQ(t.top_logprobs[1].id, 40000);
  EXPECT_EQ(t.top_logprobs[2].id, 999);
  EXPECT_EQ(t.top_logprobs[0].logprob, t.top_logprobs[1].logprob);
  EXPECT_NEAR(t.top_logprobs[2].logprob - t.top_logprobs[0].logprob, -0.5, 1e-5);
  EXPECT_EQ(t.logprob, t.top_logprobs[0].logprob);
}

TEST(SamplerTest, NonFiniteLogits) {
  SamplingParams p;
  p.seed = 2;
  Sampler s = MakeSampler(p);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Masked (-inf) and NaN entries are never drawn.
  const std::vector<int> counts = Histogram(s, {-kInf, 0.0f, nan, 0.0f, -kInf}, 500);
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);

  const SampledToken masked = s.Sample(std::vector<float>{-kInf, 1.0f, -kInf}, {});
  EXPECT_EQ(masked.id, 1);
  EXPECT_EQ(masked.logprob, 0.0f);

  const SampledToken none = s.Sample(std::vector<float>{-kInf, nan}, {});
  EXPECT_EQ(none.id, 0);
  EXPECT_EQ(none.logprob, -kInf);

  EXPECT_EQ(s.Sample(std::vector<float>{}, {}).id, -1);
}

TEST(SamplerTest, FrequenciesMatchAPlainReferenceImplementation) {
  // Vocabularies of 50 (three full SIMD blocks and a tail) and 300 (enough
  // top_p candidates for the radix levels), every knob alone and combined.
  struct Case {
    const char* name;
    size_t vocab;
    float temperature, top_p, min_p, penalty;
    int top_k;
  };
  const Case cases[] = {
      {"T=1", 50, 1.0f, 1.0f, 0.0f, 1.0f, 0},
      {"T=0.8", 50, 0.8f, 1.0f, 0.0f, 1.0f, 0},
      {"top_k=20 T=1.3", 50, 1.3f, 1.0f, 0.0f, 1.0f, 20},
      {"top_p=0.8", 50, 1.0f, 0.8f, 0.0f, 1.0f, 0},
      {"min_p=0.3 T=0.8", 50, 0.8f, 1.0f, 0.3f, 1.0f, 0},
      {"min_p=0.2 T=1", 50, 1.0f, 1.0f, 0.2f, 1.0f, 0},
      {"penalty=1.7", 50, 1.0f, 1.0f, 0.0f, 1.7f, 0},
      {"all", 50, 0.9f, 0.95f, 0.05f, 1.3f, 30},
      {"top_p=0.9 V=300", 300, 1.0f, 0.9f, 0.0f, 1.0f, 0},
      {"top_p=0.7 T=2 V=300", 300, 2.0f, 0.7f, 0.0f, 1.0f, 0},
  };
  const std::vector<int32_t> previous = {3, 7, 7, 11, 20, 42, 2};
  uint32_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<float> logits = RandomLogits(c.vocab, ++seed, -2.0f, 2.0f);
    SamplingParams p;
    p.temperature = c.temperature;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.repetition_penalty = c.penalty;
    p.top_k = c.top_k;
    p.seed = seed;
    double margin;
    const std::vector<double> expected = ReferenceDistribution(logits, previous, p, &margin);
    // Float-level differences (~1e-6 here) must not be able to flip a top_p
    // or min_p decision.
    ASSERT_GT(margin, 1e-5);
    Sampler s = MakeSampler(p);
    const std::vector<int> counts = Histogram(s, logits, 20000, previous);
    EXPECT_LT(ChiSquareRatio(counts, expected), 1.0);
    for (size_t i = 0; i < c.vocab; ++i) {
      if (expected[i] == 0) {
        EXPECT_EQ(counts[i], 0) << "id " << i;
      } else if (expected[i] * 20000 > 30) {
        EXPECT_GT(counts[i], 0) << "id " << i;
      }
    }
  }
}

TEST(SamplerTest, ValidationNamesTheFieldAndTheRange) {
  struct Case {
    SamplingParams params;
    const char* message;
  };
  std::vector<Case> cases;
  auto add = [&](auto mutate, const char* message) {
    SamplingParams p;
    mutate(p);
    cases.push_back({p, message});
  };
  add([](SamplingParams& p) { p.temperature = -0.1f; }, "temperature must be a finite number >= 0");
  add([](SamplingParams& p) { p.temperature = kInf; }, "temperature must be a finite number >= 0");
  add([](SamplingParams& p) { p.top_k = -1; }, "top_k must be >= 0");
  add([](SamplingParams& p) { p.top_p = 0.0f; }, "top_p must be in (0, 1]");
  add([](SamplingParams& p) { p.top_p = 1.5f; }, "top_p must be in (0, 1]");
  add([](SamplingParams& p) { p.top_p = std::nanf(""); }, "top_p must be in (0, 1]");
  add([](SamplingParams& p) { p.min_p = -0.5f; }, "min_p must be in [0, 1]");
  add([](SamplingParams& p) { p.min_p = 1.01f; }, "min_p must be in [0, 1]");
  add([](SamplingParams& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty must be a finite number > 0");
  add([](SamplingParams& p) { p.logprobs = 21; }, "logprobs must be in [0, 20], got 21");
  add([](SamplingParams& p) { p.logprobs = -1; }, "logprobs must be in [0, 20], got -1");
  for (const Case& c : cases) {
    const absl::Status status = ValidateSamplingParams(c.params);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
    EXPECT_FALSE(Sampler::Create(c.params).ok()) << c.message;
  }

  SamplingParams edge;
  edge.temperature = 0;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.logprobs = 20;
  edge.top_k = 100000;
  EXPECT_TRUE(ValidateSamplingParams(edge).ok());
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}).ok());
}

}  // namespace
}  // namespace tierserve
