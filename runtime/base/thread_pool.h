// A fixed set of worker threads for the data-parallel loops of a forward pass.
//
// ParallelFor splits [0, n) into a few chunks per thread (as many as the
// caller asks) and every thread, the caller included, claims chunks until
// none is left. A worker that the OS has not scheduled yet therefore delays
// nothing: the others take its share.
// Workers spin briefly between loops (a forward pass issues one every few
// microseconds) and then sleep.
//
// Thread-safety: ParallelFor may be called from several threads at once (the
// engines of several models share one pool). Callers take turns in arrival
// order, a whole loop at a time: loops are short, so turns interleave finely,
// and no caller waits behind a stream of later ones. A loop body must not
// call ParallelFor on the same pool.
#ifndef TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_
#define TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

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
  // multiples of `grain` (except the end of the last), so kernels keep their
  // row blocks whole. `chunks_per_thread` (at least 1) trades balance for
  // claims: loops whose grains cost alike can take one chunk per thread.
  static constexpr int kDefaultChunksPerThread = 4;
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1,
                   int chunks_per_thread = kDefaultChunksPerThread);

 private:
  void WorkerLoop();
  // Claims and runs chunks of loop `generation` until none is left.
  void RunChunks(uint32_t generation);

  // Runs one loop with the workers; the caller holds the turn.
  void RunLoop(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain,
               int64_t blocks, int chunks_per_thread);

  std::vector<std::thread> workers_;

  // Turns of the callers of ParallelFor: a ticket lock, so they are served in
  // arrival order.
  absl::Mutex turn_mu_;
  uint64_t next_ticket_ ABSL_GUARDED_BY(turn_mu_) = 0;
  uint64_t now_serving_ ABSL_GUARDED_BY(turn_mu_) = 0;

  // The loop being run. Written by the caller before it publishes a new
  // generation in state_, read by workers only after they claimed a chunk of
  // that generation, which keeps the loop (and these fields) alive.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
  int64_t job_blocks_ = 0;  // grains in [0, n)
  uint32_t job_chunks_ = 0;  // the caller's copy of the count in state_

  // High 32 bits: generation of the current loop; bits 16-31: its number of
  // chunks; low 16 bits: next chunk. The count travels in the same word as the
  // generation: a worker still looking at a finished loop's state fails its
  // claim (a compare-exchange of the whole word) instead of judging the old
  // loop's next chunk against the count of the loop the caller is setting up.
  std::atomic<uint64_t> state_{0};
  std::atomic<uint32_t> chunks_done_{0};
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable wake_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_THREAD_POOL_H_
