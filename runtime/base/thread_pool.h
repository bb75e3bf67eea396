// A fixed set of worker threads for data-parallel loops over the kernels.
// ParallelFor splits [0, n) into one contiguous chunk per thread (the caller's
// thread takes a chunk too) and returns when all chunks are done; it is meant
// for the short, uniform loops of a forward pass, where a spin-then-sleep
// handoff costs far less than a task queue.
//
// Thread-safety: ParallelFor may be called from one thread at a time.
#ifndef TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_
#define TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tierserve {

class ThreadPool {
 public:
  // `num_threads` counts the caller: 1 runs everything inline.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n). Chunk edges are
  // multiples of `grain` (except the last), so kernels can keep row blocks.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void WorkerLoop(int index);
  void RunChunk(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  // Published job; read by workers after they observe a new generation_.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_
