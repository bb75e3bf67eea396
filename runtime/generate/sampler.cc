#include "runtime/generate/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "absl/strings/str_format.h"

namespace tierserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kMaxFloat = std::numeric_limits<float>::max();

// Below this many tokens the top_p boundary is found by sorting outright.
constexpr size_t kSortDirectly = 128;
// Above this k the k-th largest logit is found with nth_element rather than
// a k-element heap, whose O(V log k) worst case would then dominate.
constexpr int kMaxHeapTopK = 512;

// The passes over the whole vocabulary are written as fixed-width inner loops
// over independent lanes, which the compiler turns into SIMD code at -O2
// without being allowed to reassociate floating-point sums.
constexpr size_t kLanes = 16;

// NaN never wins and +inf would turn `x - max` into NaN; see the header.
inline float Sanitize(float x) {
  x = x != x ? kNegInf : x;
  return x > kMaxFloat ? kMaxFloat : x;
}

// exp(y) for y <= 0 (including -inf), within 1e-7 relative: Cephes' expf
// polynomial on y - k ln2, scaled by 2^k. Results below e^-87 (~2^-125.5)
// flush to 0, which no sampling decision can notice next to the top token's
// weight of 1. exp(0) is exactly 1. Unlike std::exp it vectorizes, and it
// does not depend on the C library.
inline float ExpNonPositive(float y) {
  const bool tiny = y < -87.0f;
  y = tiny ? -87.0f : y;
  // Round-to-nearest by the 1.5 * 2^23 trick; |y| log2(e) < 2^22 here.
  float k = y * 1.44269504088896341f + 12582912.0f;
  k -= 12582912.0f;
  float r = y - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23);
  return tiny ? 0.0f : p * scale;
}

struct MaxAndIndex {
  float max;
  int32_t index;  // the lowest index holding `max`
};

// Combines per-lane maxima, each with the first index where it occurred.
MaxAndIndex ReduceLanes(const float* lane_max, const int32_t* lane_index) {
  MaxAndIndex best{lane_max[0], lane_index[0]};
  for (size_t j = 1; j < kLanes; ++j) {
    if (lane_max[j] > best.max || (lane_max[j] == best.max && lane_index[j] < best.index)) {
      best = {lane_max[j], lane_index[j]};
    }
  }
  return best;
}

// dst[i] = Sanitize(src[i]) (when `dst` is set); returns the largest value and
// its lowest index. REQUIRES: n > 0 and n < 2^31.
template <bool kSanitize>
MaxAndIndex ArgMax(const float* __restrict src, float* __restrict dst, size_t n) {
  float lane_max[kLanes];
  int32_t lane_index[kLanes];
  std::fill(lane_max, lane_max + kLanes, kNegInf);
  std::fill(lane_index, lane_index + kLanes, 0);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) {
      float v = src[i + j];
      if constexpr (kSanitize) {
        v = Sanitize(v);
        dst[i + j] = v;
      }
      const bool above = v > lane_max[j];  // strict: a lane keeps its first index
      lane_max[j] = above ? v : lane_max[j];
      lane_index[j] = above ? static_cast<int32_t>(i + j) : lane_index[j];
    }
  }
  MaxAndIndex best = ReduceLanes(lane_max, lane_index);
  // The lanes start at -inf with index 0: an all -inf array yields index 0.
  if (best.max == kNegInf) best.index = 0;
  for (; i < n; ++i) {
    float v = src[i];
    if constexpr (kSanitize) {
      v = Sanitize(v);
      dst[i] = v;
    }
    if (v > best.max) best = {v, static_cast<int32_t>(i)};
  }
  return best;
}

// Returns sum_i exp((x[i] - shift) * scale), accumulated in double; when
// `out` is set, also stores each term there (out may equal x). REQUIRES:
// shift >= every x[i] (no NaN), scale finite and > 0.
double SumExp(const float* x, size_t n, float shift, float scale, float* out) {
  double lane_sum[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    float e[kLanes];
    for (size_t j = 0; j < kLanes; ++j) e[j] = ExpNonPositive((x[i + j] - shift) * scale);
    if (out != nullptr) std::copy(e, e + kLanes, out + i);
    for (size_t j = 0; j < kLanes; ++j) lane_sum[j] += e[j];
  }
  double sum = 0.0;
  for (size_t j = 0; j < kLanes; ++j) sum += lane_sum[j];
  for (; i < n; ++i) {
    const float e = ExpNonPositive((x[i] - shift) * scale);
    if (out != nullptr) out[i] = e;
    sum += e;
  }
  return sum;
}

// Inverse-CDF draw over all of w[0..n): the first i whose running sum
// exceeds `target`. Whole blocks are skipped on their sums; if rounding leaves
// the running sum short of `target`, the last positive weight is taken.
int32_t DrawFromAll(const float* w, size_t n, double target) {
  double cum = 0.0;
  int32_t last = -1;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    double part[4] = {};
    for (size_t j = 0; j < kLanes; ++j) part[j % 4] += w[i + j];
    const double block = (part[0] + part[1]) + (part[2] + part[3]);
    if (block <= 0.0) continue;
    if (cum + block <= target) {
      cum += block;
      for (size_t j = kLanes; j-- > 0;) {
        if (w[i + j] > 0.0f) {
          last = static_cast<int32_t>(i + j);
          break;
        }
      }
      continue;
    }
    for (size_t j = 0; j < kLanes; ++j) {
      if (w[i + j] <= 0.0f) continue;
      last = static_cast<int32_t>(i + j);
      cum += w[i + j];
      if (cum > target) return last;
    }
    return last;
  }
  for (; i < n; ++i) {
    if (w[i] <= 0.0f) continue;
    last = static_cast<int32_t>(i);
    cum += w[i];
    if (cum > target) return last;
  }
  return last;
}

// The same over the ids in `ids` only.
int32_t DrawFromList(const float* w, const std::vector<int32_t>& ids, double target) {
  double cum = 0.0;
  int32_t last = -1;
  for (int32_t id : ids) {
    if (w[id] <= 0.0f) continue;
    last = id;
    cum += w[id];
    if (cum > target) break;
  }
  return last;
}

// Writes the ids i in [0, n) with keep(i), ascending, into `ids`. Blocks
// with no such id are skipped by a SIMD test (most of them, when few ids are
// kept); inside a block the ids are stored without branches, as the outcome
// can be close to a coin flip.
template <typename Keep>
void CollectIds(size_t n, Keep keep, std::vector<int32_t>& ids) {
  ids.resize(n);
  size_t count = 0;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    int any = 0;
    for (size_t j = 0; j < kLanes; ++j) any |= keep(i + j) ? 1 : 0;
    if (any == 0) continue;
    for (size_t j = 0; j < kLanes; ++j) {
      ids[count] = static_cast<int32_t>(i + j);
      count += keep(i + j) ? 1 : 0;
    }
  }
  for (; i < n; ++i) {
    ids[count] = static_cast<int32_t>(i);
    count += keep(i) ? 1 : 0;
  }
  ids.resize(count);
}

// Calls visit(i) for every i in [begin, n) with x[i] > bar(), in ascending
// order; bar() may rise as visit() runs. Blocks with no such element are
// skipped by a SIMD test, which is nearly all of them once a top-k heap has
// filled. NaN never passes.
template <typename Bar, typename Visit>
void VisitAbove(const float* x, size_t begin, size_t n, Bar bar, Visit visit) {
  size_t i = begin;
  for (; i + kLanes <= n; i += kLanes) {
    const float b = bar();
    int any = 0;
    for (size_t j = 0; j < kLanes; ++j) any |= x[i + j] > b ? 1 : 0;
    if (any == 0) continue;
    for (size_t j = 0; j < kLanes; ++j) {
      if (x[i + j] > bar()) visit(i + j);
    }
  }
  for (; i < n; ++i) {
    if (x[i] > bar()) visit(i);
  }
}

// The ranking used by top_p: larger first, then lower id.
struct RankedBefore {
  const float* value;
  bool operator()(int32_t a, int32_t b) const {
    return value[a] > value[b] || (value[a] == value[b] && a < b);
  }
};

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "temperature must be a finite number >= 0 (0 = greedy), got %g", p.temperature));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_k must be >= 0 (0 = disabled), got %d", p.top_k));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_p must be in (0, 1] (1 = disabled), got %g", p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("min_p must be in [0, 1] (0 = disabled), got %g", p.min_p));
  }
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "repetition_penalty must be a finite number > 0 (1 = disabled), got %g",
        p.repetition_penalty));
  }
  if (p.logprobs < 0 || p.logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrFormat("logprobs must be in [0, %d], got %d", kMaxLogprobs, p.logprobs));
  }
  return absl::OkStatus();
}

absl::StatusOr<Sampler> Sampler::Create(const SamplingParams& params) {
  absl::Status status = ValidateSamplingParams(params);
  if (!status.ok()) return status;
  return Sampler(params);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

double Sampler::NextUniform() {
  // std::uniform_real_distribution's algorithm is left to the library; this
  // one is fixed, so a seed means the same tokens everywhere.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::ApplyRepetitionPenalty(absl::Span<const int32_t> previous_tokens) {
  const size_t vocab = work_.size();
  const float penalty = params_.repetition_penalty;
  seen_.resize((vocab + 63) / 64);  // all clear: the bits set below are cleared again
  for (int32_t id : previous_tokens) {
    if (id < 0 || static_cast<size_t>(id) >= vocab) continue;
    uint64_t& word = seen_[id >> 6];
    const uint64_t bit = uint64_t{1} << (id & 63);
    if (word & bit) continue;  // a token is penalized once, however often it occurred
    word |= bit;
    float& x = work_[id];
    x = x < 0.0f ? x * penalty : x / penalty;
  }
  for (int32_t id : previous_tokens) {
    if (id >= 0 && static_cast<size_t>(id) < vocab) seen_[id >> 6] = 0;
  }
}

void Sampler::SelectTopK(int k) {
  const size_t vocab = work_.size();
  float kth;
  if (k <= kMaxHeapTopK) {
    // Min-heap of the k largest so far; most logits fail the first compare.
    select_.assign(work_.begin(), work_.begin() + k);
    std::make_heap(select_.begin(), select_.end(), std::greater<float>());
    VisitAbove(
        work_.data(), k, vocab, [&] { return select_.front(); },
        [&](size_t i) {
          std::pop_heap(select_.begin(), select_.end(), std::greater<float>());
          select_.back() = work_[i];
          std::push_heap(select_.begin(), select_.end(), std::greater<float>());
        });
    kth = select_.front();
  } else {
    select_.assign(work_.begin(), work_.end());
    std::nth_element(select_.begin(), select_.begin() + (k - 1), select_.end(),
                     std::greater<float>());
    kth = select_[k - 1];
  }
  CollectIds(vocab, [&](size_t i) { return work_[i] >= kth; }, cand_);
}

void Sampler::NucleusThreshold(bool have_cand, double total, double target, float* weight,
                               int32_t* id) {
  const float* w = work_.data();
  if (!have_cand) {
    // All tokens lighter than t = (total - target) / V weigh less than
    // total - target together, so the heavier ones hold more than `target`
    // and contain the nucleus. Most of a real vocabulary is far lighter.
    const size_t vocab = work_.size();
    const float t = static_cast<float>((total - target) / static_cast<double>(vocab) * 0.999);
    CollectIds(vocab, [&](size_t i) { return w[i] >= t; }, cand_);
  }
  order_.assign(cand_.begin(), cand_.end());

  // Radix selection on the weights' bit patterns (which order like the
  // weights, as they are >= 0): each level splits the boundary range into 256
  // bins by 8 more bits, counts the bins wholly inside the nucleus into
  // `above`, drops the bins wholly outside, and narrows to the bin the
  // boundary falls in. Only that last bin is sorted.
  double above = 0.0;
  for (int shift : {23, 15, 7}) {
    const size_t n = order_.size();
    if (n <= kSortDirectly) break;
    auto bin_of = [&](int32_t t) { return (std::bit_cast<uint32_t>(w[t]) >> shift) & 0xFF; };
    // Four interleaved histograms, so that runs of equal bins do not make
    // one long chain of dependent additions.
    double mass[4][256] = {};
    for (size_t i = 0; i < n; ++i) mass[i & 3][bin_of(order_[i])] += w[order_[i]];
    int bin = 255;
    double cum = above;
    for (; bin >= 0; --bin) {
      const double m = (mass[0][bin] + mass[1][bin]) + (mass[2][bin] + mass[3][bin]);
      if (cum + m >= target) break;
      cum += m;
    }
    // Summing in another grouping can fall short of `target` by a rounding
    // error; the sorted walk below then settles the boundary.
    if (bin < 0) break;
    above = cum;
    size_t count = 0;  // keep the boundary bin, branch-free and in place
    for (size_t i = 0; i < n; ++i) {
      const int32_t t = order_[i];
      order_[count] = t;
      count += bin_of(t) == static_cast<uint32_t>(bin) ? 1 : 0;
    }
    order_.resize(count);
  }

  std::sort(order_.begin(), order_.end(), RankedBefore{w});
  double cum = above;
  size_t last = order_.size() - 1;
  for (size_t i = 0; i < order_.size(); ++i) {
    cum += w[order_[i]];
    if (cum >= target) {
      last = i;
      break;
    }
  }
  *weight = w[order_[last]];
  *id = order_[last];
}

int32_t Sampler::SampleFromPenalized(float max_logit, float inv_temperature,
                                     const double* weights_total) {
  const size_t vocab = work_.size();
  // Only reachable when the penalty pushed every logit to -inf.
  if (max_logit == kNegInf) return 0;
  const bool use_top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab;
  float* w = work_.data();

  // Unnormalized probabilities exp((x - max) / T): the largest is exactly 1,
  // nothing overflows, and min_p compares against the weight directly.
  double total;
  if (use_top_k) {
    SelectTopK(params_.top_k);
    total = 0.0;
    for (int32_t id : cand_) {
      w[id] = ExpNonPositive((w[id] - max_logit) * inv_temperature);
      total += w[id];
    }
  } else if (weights_total != nullptr) {
    total = *weights_total;  // work_ already holds the weights
  } else {
    total = SumExp(w, vocab, max_logit, inv_temperature, w);
  }

  const bool use_top_p = params_.top_p < 1.0f;
  const float min_weight = params_.min_p;  // relative to the top token's weight of 1
  if (!use_top_p && min_weight <= 0.0f) {
    const double target = NextUniform() * total;
    return use_top_k ? DrawFromList(w, cand_, target) : DrawFromAll(w, vocab, target);
  }

  // Keep the candidates ranked at or before (w_last, id_last) and weighing at
  // least min_weight, in ascending id order so the draw is reproducible.
  float w_last = 0.0f;
  int32_t id_last = static_cast<int32_t>(vocab);
  if (use_top_p) {
    NucleusThreshold(use_top_k, total, total * params_.top_p, &w_last, &id_last);
  }
  auto kept = [&](size_t id) {
    const float wi = w[id];
    return (wi >= min_weight) &
           ((wi > w_last) | ((wi == w_last) & (id <= static_cast<size_t>(id_last))));
  };
  if (use_top_k || use_top_p) {
    size_t count = 0;  // a branch-free erase_if
    for (size_t i = 0; i < cand_.size(); ++i) {
      const int32_t id = cand_[i];
      cand_[count] = id;
      count += kept(static_cast<size_t>(id)) ? 1 : 0;
    }
    cand_.resize(count);
  } else {
    CollectIds(vocab, kept, cand_);
  }
  double kept_total = 0.0;
  for (int32_t id : cand_) kept_total += w[id];
  return DrawFromList(w, cand_, NextUniform() * kept_total);
}

SampledToken Sampler::Sample(absl::Span<const float> logits,
                             absl::Span<const int32_t> previous_tokens) {
  SampledToken out;
  const size_t vocab = logits.size();
  if (vocab == 0) {
    out.id = -1;
    out.logprob = kNegInf;
    return out;
  }
  work_.resize(vocab);
  const MaxAndIndex raw = ArgMax<true>(logits.data(), work_.data(), vocab);
  if (raw.max == kNegInf) {
    out.id = 0;
    out.logprob = kNegInf;
    return out;
  }

  const bool penalize = params_.repetition_penalty != 1.0f && !previous_tokens.empty();
  const float inv_temperature = params_.temperature > 0.0f ? 1.0f / params_.temperature : 0.0f;
  // A temperature so small that 1/T overflows is greedy in all but ties.
  const bool greedy = !(inv_temperature > 0.0f && std::isfinite(inv_temperature));
  // At T = 1 with no penalty and no top_k the sampling weights are the raw
  // softmax's numerators, so one exponential pass serves both.
  const bool shared_pass = !greedy && !penalize && inv_temperature == 1.0f &&
                           !(params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab);

  // Raw log-softmax normalizer, from the unmodified (sanitized) logits.
  const double raw_sum =
      SumExp(work_.data(), vocab, raw.max, 1.0f, shared_pass ? work_.data() : nullptr);
  const double log_z = raw.max + std::log(raw_sum);

  if (shared_pass) {
    out.id = SampleFromPenalized(raw.max, 1.0f, &raw_sum);
  } else {
    MaxAndIndex penalized = raw;
    if (penalize) {
      ApplyRepetitionPenalty(previous_tokens);
      penalized = ArgMax<false>(work_.data(), nullptr, vocab);
    }
    out.id = greedy ? penalized.index
                    : SampleFromPenalized(penalized.max, inv_temperature, nullptr);
  }
  out.logprob = static_cast<float>(Sanitize(logits[out.id]) - log_z);

  const size_t n = std::min(static_cast<size_t>(params_.logprobs), vocab);
  if (n > 0) {
    // Heap of the n best so far with the worst on top; ids arrive in
    // ascending order, so an equal value never displaces an earlier id.
    auto better = [](const TokenLogprob& a, const TokenLogprob& b) {
      return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
    };
    std::vector<TokenLogprob>& top = out.top_logprobs;
    top.resize(n);
    for (size_t i = 0; i < n; ++i) top[i] = {static_cast<int32_t>(i), Sanitize(logits[i])};
    std::make_heap(top.begin(), top.end(), better);
    VisitAbove(
        logits.data(), n, vocab, [&] { return top.front().logprob; },
        [&](size_t i) {
          const float v = Sanitize(logits[i]);  // +inf passed the raw test
          if (!(v > top.front().logprob)) return;
          std::pop_heap(top.begin(), top.end(), better);
          top.back() = {static_cast<int32_t>(i), v};
          std::push_heap(top.begin(), top.end(), better);
        });
    std::sort_heap(top.begin(), top.end(), better);
    for (TokenLogprob& t : top) t.logprob = static_cast<float>(t.logprob - log_z);
  }
  return out;
}

}  // namespace tierserve
