#include "runtime/base/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

TEST(ThreadPoolTest, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5, 16, 17, 1000}) {
      for (int64_t grain : {1, 4, 16}) {
        for (int chunks_per_thread : {0, 1, 2, ThreadPool::kDefaultChunksPerThread}) {
          std::vector<std::atomic<int>> hits(n);
          pool.ParallelFor(
              n,
              [&](int64_t b, int64_t e) {
                EXPECT_TRUE(b % grain == 0) << "chunk start " << b << " not on grain " << grain;
                EXPECT_TRUE(e == n || e % grain == 0) << "chunk end " << e;
                for (int64_t i = b; i < e; ++i) hits[i]++;
              },
              grain, chunks_per_thread);
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i << " chunks/thread=" << chunks_per_thread;
          }
        }
      }
    }
  }
}

// A loop is cut into chunks_per_thread x threads chunks (fewer when it has
// fewer grains; below 1 counts as 1), of grains as equal as can be.
TEST(ThreadPoolTest, ChunksPerThreadSetsTheChunks) {
  ThreadPool pool(2);
  for (int chunks_per_thread : {0, 1, 3, ThreadPool::kDefaultChunksPerThread}) {
    const int64_t expected = 2 * std::max(1, chunks_per_thread);
    std::atomic<int> calls{0};
    std::atomic<int64_t> smallest{1 << 30}, largest{0};
    pool.ParallelFor(
        1600,
        [&](int64_t b, int64_t e) {
          calls++;
          int64_t s = smallest.load();
          while (e - b < s && !smallest.compare_exchange_weak(s, e - b)) {}
          int64_t l = largest.load();
          while (e - b > l && !largest.compare_exchange_weak(l, e - b)) {}
        },
        16, chunks_per_thread);
    EXPECT_EQ(calls.load(), expected) << "chunks/thread " << chunks_per_thread;
    EXPECT_LE(largest.load() - smallest.load(), 16) << "chunks/thread " << chunks_per_thread;
  }
  std::atomic<int> calls{0};
  pool.ParallelFor(3, [&](int64_t, int64_t) { calls++; }, 1, 4);  // 3 grains: 3 chunks
  EXPECT_EQ(calls.load(), 3);
}

TEST(ThreadPoolTest, ManyBackToBackLoops) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int r = 0; r < 2000; ++r) {
    pool.ParallelFor(64, [&](int64_t b, int64_t e) { total += e - b; });
  }
  EXPECT_EQ(total.load(), 2000 * 64);
}

// Loops of alternating sizes, so their chunk counts differ: a worker still on
// the previous loop must never take a chunk of the next one by the next one's
// count (each index once per loop, and the loop's function never called after
// ParallelFor returned: the daemon under AddressSanitizer showed a
// heap-use-after-free of it). The window is a few instructions wide: this
// caught it about once in five runs under AddressSanitizer, and
// ThreadSanitizer reports the unordered read on any run.
TEST(ThreadPoolTest, BackToBackLoopsOfDifferentChunkCounts) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(48);
  int bad = 0;
  for (int r = 0; r < 200000; ++r) {
    const int64_t n = r % 2 == 0 ? 2 : 48;
    for (int64_t i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
    // A heap-held function that dies with the loop.
    auto fn = std::make_unique<std::function<void(int64_t, int64_t)>>([&hits](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
    });
    pool.ParallelFor(n, *fn);
    fn.reset();
    for (int64_t i = 0; i < n; ++i) bad += hits[i].load(std::memory_order_relaxed) != 1;
  }
  EXPECT_EQ(bad, 0);
}

// The engines of several models share one pool: their loops must each cover
// every index exactly once, whatever the interleaving.
TEST(ThreadPoolTest, SeveralCallersAtOnce) {
  ThreadPool pool(2);
  constexpr int kCallers = 3, kLoops = 3000, kN = 96;
  std::vector<std::thread> callers;
  std::atomic<int> bad{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      std::vector<int> hits(kN);
      for (int r = 0; r < kLoops; ++r) {
        std::fill(hits.begin(), hits.end(), 0);
        pool.ParallelFor(
            kN,
            [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) hits[i] += c + 1;
            },
            4);
        for (int v : hits) bad += v != c + 1;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace tierserve
