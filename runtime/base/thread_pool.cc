#include "runtime/base/thread_pool.h"

#include <algorithm>

namespace tierserve {
namespace {
// Spin this many pauses (tens of microseconds) before sleeping.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// The fields of state_ (thread_pool.h).
inline uint32_t GenerationOf(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
inline uint32_t ChunksOf(uint64_t s) { return static_cast<uint32_t>(s >> 16) & 0xFFFF; }
inline uint32_t NextChunkOf(uint64_t s) { return static_cast<uint32_t>(s) & 0xFFFF; }
constexpr int64_t kMaxChunks = 0xFFFF;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < std::max(1, num_threads); ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(uint32_t generation) {
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    if (GenerationOf(s) != generation) return;
    const uint32_t chunks = ChunksOf(s);
    const uint32_t c = NextChunkOf(s);
    if (c >= chunks) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
    // Chunk c covers grains [blocks*c/chunks, blocks*(c+1)/chunks).
    const int64_t b0 = job_blocks_ * c / chunks;
    const int64_t b1 = job_blocks_ * (c + 1) / chunks;
    const int64_t begin = std::min(job_n_, b0 * job_grain_);
    const int64_t end = std::min(job_n_, b1 * job_grain_);
    if (begin < end) (*job_)(begin, end);
    chunks_done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain, int chunks_per_thread) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t blocks = (n + grain - 1) / grain;
  if (workers_.empty() || blocks <= 1) {
    fn(0, n);
    return;
  }
  {
    absl::MutexLock lock(&turn_mu_);
    const uint64_t ticket = next_ticket_++;
    auto my_turn = [this, ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(turn_mu_) {
      return now_serving_ == ticket;
    };
    turn_mu_.Await(absl::Condition(&my_turn));
  }
  RunLoop(n, fn, grain, blocks, std::max(1, chunks_per_thread));
  absl::MutexLock lock(&turn_mu_);
  ++now_serving_;
}

void ThreadPool::RunLoop(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                         int64_t grain, int64_t blocks, int chunks_per_thread) {
  job_ = &fn;
  job_n_ = n;
  job_grain_ = grain;
  job_blocks_ = blocks;
  job_chunks_ = static_cast<uint32_t>(
      std::min<int64_t>({blocks, int64_t{chunks_per_thread} * num_threads(), kMaxChunks}));
  chunks_done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = GenerationOf(state_.load(std::memory_order_relaxed)) + 1;
  state_.store(static_cast<uint64_t>(generation) << 32 | static_cast<uint64_t>(job_chunks_) << 16,
               std::memory_order_release);
  {
    // Taking the lock orders this publication against a worker about to sleep.
    std::lock_guard<std::mutex> lock(mu_);
  }
  wake_.notify_all();
  RunChunks(generation);
  for (int spin = 0; chunks_done_.load(std::memory_order_acquire) != job_chunks_; ++spin) {
    if (spin < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = GenerationOf(state_.load(std::memory_order_acquire));
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      if (stop_.load(std::memory_order_acquire)) return;
      CpuRelax();
      gen = GenerationOf(state_.load(std::memory_order_acquire));
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] {
        return stop_.load(std::memory_order_acquire) ||
               GenerationOf(state_.load(std::memory_order_acquire)) != seen;
      });
      gen = GenerationOf(state_.load(std::memory_order_acquire));
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen;
    RunChunks(gen);
  }
}

}  // namespace tierserve
