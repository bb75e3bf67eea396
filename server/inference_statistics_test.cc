#include "server/inference_statistics.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

TEST(InferenceStatistics, AnUnseenModelIsAllZeros) {
  InferenceStatistics stats;
  const InferenceStatistics::Model m = stats.Get("nope");
  EXPECT_EQ(m.inference_count, 0u);
  EXPECT_EQ(m.execution_count, 0u);
  EXPECT_EQ(m.last_inference_ms, 0u);
  EXPECT_EQ(m.success.count, 0u);
  EXPECT_EQ(m.queue.ns, 0u);
}

TEST(InferenceStatistics, RequestsSequencesAndStepsAddUpPerModel) {
  InferenceStatistics stats;
  stats.RequestEnded("a", true, 0.25, 1000);
  stats.RequestEnded("a", false, 0.5, 2000);  // a failure does not move last_inference
  stats.RequestEnded("b", true, 1.0, 3000);
  stats.SequenceEnded("a");
  stats.SequenceEnded("a");
  stats.StepRan("a", 2, 0.01, {0.002, 0.003});
  stats.StepRan("a", 0, 0.5, {});  // ran no forward: neither an execution nor compute
  stats.StepRan("a", 1, 0.02, {});

  const InferenceStatistics::Model a = stats.Get("a");
  EXPECT_EQ(a.success.count, 1u);
  EXPECT_EQ(a.success.ns, 250'000'000u);
  EXPECT_EQ(a.fail.count, 1u);
  EXPECT_EQ(a.fail.ns, 500'000'000u);
  EXPECT_EQ(a.last_inference_ms, 1000u);
  EXPECT_EQ(a.inference_count, 2u);
  EXPECT_EQ(a.execution_count, 2u);
  EXPECT_EQ(a.queue.count, 2u);
  EXPECT_EQ(a.queue.ns, 5'000'000u);
  // Each forward's time once per sequence in it: 2 x 10 ms + 1 x 20 ms.
  EXPECT_EQ(a.compute_infer.ns, 40'000'000u);
  EXPECT_EQ(a.compute_infer.count, 2u);

  const InferenceStatistics::Model b = stats.Get("b");
  EXPECT_EQ(b.success.count, 1u);
  EXPECT_EQ(b.last_inference_ms, 3000u);
  EXPECT_EQ(b.inference_count, 0u);
}

TEST(InferenceStatistics, ConcurrentUpdatesAreAllCounted) {
  InferenceStatistics stats;
  constexpr int kThreads = 4, kEach = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&stats] {
      for (int i = 0; i < kEach; ++i) {
        stats.RequestEnded("m", true, 1e-6, 1);
        stats.SequenceEnded("m");
        stats.StepRan("m", 1, 1e-6, {1e-6});
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const InferenceStatistics::Model m = stats.Get("m");
  EXPECT_EQ(m.success.count, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(m.success.ns, static_cast<uint64_t>(kThreads * kEach * 1000));
  EXPECT_EQ(m.inference_count, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(m.execution_count, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(m.queue.count, static_cast<uint64_t>(kThreads * kEach));
}

}  // namespace
}  // namespace tierserve
