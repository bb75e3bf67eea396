#include "runtime/model/attention.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/kv/kv_cache.h"

namespace tierserve {
namespace {

constexpr int64_t kHeads = 9, kKvHeads = 3, kHeadDim = 64, kLayers = 2;
constexpr int64_t kKvDim = kKvHeads * kHeadDim, kQDim = kHeads * kHeadDim;

void Fill(KvCache& cache, int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> key(kKvDim), value(kKvDim);
  for (int64_t l = 0; l < kLayers; ++l) {
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t i = 0; i < kKvDim; ++i) {
        key[i] = u(rng);
        value[i] = u(rng);
      }
      cache.Store(l, p, key.data(), value.data());
    }
  }
}

// Three sequences: a decode row deep into a long context, a prefill chunk
// that crosses a span edge, and a short decode row; the long ones in paged
// caches of 16-token blocks, the short one in a contiguous slab.
class CausalAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(11);
    pool_ = std::make_unique<KvBlockPool>(KvBlockPool::Options{kLayers, kKvDim, 16, 200});
    long_ = std::make_unique<PagedKvCache>(pool_.get(), kKvDim);
    chunk_ = std::make_unique<PagedKvCache>(pool_.get(), kKvDim);
    ASSERT_TRUE(long_->Reserve(1300));
    ASSERT_TRUE(chunk_->Reserve(300));
    short_ = std::make_unique<ContiguousKvCache>(kLayers, 40, kKvDim);
    Fill(*long_, 1300, rng);
    Fill(*chunk_, 300, rng);
    Fill(*short_, 40, rng);
    batch_ = {SequenceInput{{}, 1299, long_.get()}, SequenceInput{{}, 240, chunk_.get()},
              SequenceInput{{}, 39, short_.get()}};
    AddRows(0, 1299, 1);
    AddRows(1, 240, 60);
    AddRows(2, 39, 1);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    q_.resize(static_cast<size_t>(rows_.size() * kQDim));
    for (float& x : q_) x = u(rng);
  }
  void AddRows(int32_t seq, int64_t start, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      rows_.tokens.push_back(0);
      rows_.seq.push_back(seq);
      rows_.pos.push_back(start + i);
    }
  }
  std::vector<float> Run(const BatchRows& rows, absl::Span<const SequenceInput> batch, const float* q,
                         AttentionSchedule schedule, int threads) {
    ThreadPool pool(threads);
    std::vector<float> out(static_cast<size_t>(rows.size() * kQDim), NAN);
    CausalAttention(CpuKernels(), rows, batch, 1, q, kHeads, kKvHeads, kHeadDim, out.data(), &pool, schedule);
    return out;
  }

  std::unique_ptr<KvBlockPool> pool_;
  std::unique_ptr<PagedKvCache> long_, chunk_;
  std::unique_ptr<ContiguousKvCache> short_;
  std::vector<SequenceInput> batch_;
  BatchRows rows_;
  std::vector<float> q_;
};

// Sharing the work by rows or by spans, on one thread or two, gives the same
// bits: a sequence's output never depends on how its attention was cut.
TEST_F(CausalAttentionTest, EveryScheduleAndThreadCountGivesTheSameBits) {
  const std::vector<float> want = Run(rows_, batch_, q_.data(), AttentionSchedule::kByRow, 1);
  for (AttentionSchedule s : {AttentionSchedule::kByRow, AttentionSchedule::kBySpan, AttentionSchedule::kAuto}) {
    for (int threads : {1, 2, 3}) {
      const std::vector<float> got = Run(rows_, batch_, q_.data(), s, threads);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
          << "schedule " << static_cast<int>(s) << ", " << threads << " threads";
    }
  }
}

// A row computed alone (decode of one sequence) equals the same row in the
// mixed batch.
TEST_F(CausalAttentionTest, ARowAloneEqualsTheRowInTheBatch) {
  const std::vector<float> batched = Run(rows_, batch_, q_.data(), AttentionSchedule::kAuto, 2);
  for (int64_t t : {int64_t{0}, int64_t{1}, int64_t{30}, rows_.size() - 1}) {
    BatchRows one;
    one.tokens = {0};
    one.seq = {0};
    one.pos = {rows_.pos[t]};
    const SequenceInput in = batch_[rows_.seq[t]];
    const std::vector<float> alone = Run(one, absl::MakeConstSpan(&in, 1), &q_[t * kQDim], AttentionSchedule::kAuto, 2);
    ASSERT_EQ(std::memcmp(alone.data(), &batched[t * kQDim], kQDim * sizeof(float)), 0) << "row " << t;
  }
}

}  // namespace
}  // namespace tierserve
