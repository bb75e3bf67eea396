// Serves generation requests for one loaded model with continuous batching:
// one worker thread runs a step loop —
//
//   take new requests -> schedule (runtime/engine/scheduler.h) -> one batched
//   forward over every running sequence's next tokens (decode rows and
//   prefill chunks together) -> sample each sequence -> stream -> retire
//
// so every weight read serves the whole batch. The KV cache is a pool of
// fixed-size blocks (runtime/kv/), shared between sequences through prefix
// caching; a sequence that runs out of blocks is preempted and recomputed
// later, never failed. Requests join and leave the batch at every step; a
// cancelled request or one past its deadline leaves within one step and its
// blocks are free for the next.
//
// A sequence's tokens do not depend on the batch: the kernels keep one
// reduction order per row (runtime/model/batch_invariance_test.cc) and each
// sequence samples from its own seeded generator.
//
// Ownership: the Engine owns the model and the KV pool. Callbacks of a job
// run on the worker thread; they must not block for long.
// Thread-safety: Submit, Shutdown and the counters are thread-safe.
#ifndef TIERSERVE_RUNTIME_ENGINE_ENGINE_H_
#define TIERSERVE_RUNTIME_ENGINE_ENGINE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/engine/scheduler.h"
#include "runtime/generate/generator.h"
#include "runtime/generate/sequence.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {

// One sequence to generate, with the caller's hooks.
struct GenerationJob {
  GenerationRequest request;
  // Sees each step's delta; returning false cancels (optional).
  std::function<bool(const GenerationDelta&)> on_delta;
  // Called once when the job starts running (optional). Also called, just
  // before on_done, for a job that ends without ever running.
  std::function<void()> on_start;
  // Polled at every step while the job waits or runs (optional): true cancels.
  std::function<bool()> cancelled;
  // Polled at every step while the job runs (optional): false pauses it for
  // the step — its reader has not taken the output already sent.
  std::function<bool()> ready;
  // Called exactly once with the result or the error (required).
  std::function<void(absl::StatusOr<GenerationResult>)> on_done;
};

// What one engine step did, for metrics.
struct StepStats {
  int64_t sequences = 0;        // in the forward
  int64_t tokens = 0;           // computed, all sequences together
  int64_t prefill_tokens = 0;   // of which prompt (or recomputed) tokens
  int64_t admitted = 0;
  int64_t preempted = 0;
  int64_t paused = 0;           // running, but waiting for their readers
  int64_t prefix_query_tokens = 0;  // tokens of the sequences admitted, looked up in the prefix cache
  int64_t prefix_hit_tokens = 0;    // of which found there (not computed)
  int64_t kv_used_blocks = 0;     // after the step
  int64_t kv_cached_blocks = 0;   // held by the prefix cache alone
  int64_t kv_total_blocks = 0;
  double seconds = 0;             // wall time of the step
  // Per request: waits of those that started running this step, prefill
  // times of those that got their first token, and the gaps since the
  // previous token of the others.
  std::vector<double> queue_seconds;
  std::vector<double> prefill_seconds;
  std::vector<double> inter_token_seconds;
};

class Engine {
 public:
  struct Options {
    std::string name;
    int max_queued = 256;           // jobs waiting beyond this are refused
    int64_t max_batch_size = 8;     // sequences running at once
    int64_t max_step_tokens = 512;  // tokens per forward (prefill is chunked to fit)
    int64_t kv_block_tokens = 16;
    // Element type of the KV cache: kF32, or kF16 (half the memory and the
    // bytes long contexts read per token; values rounded to nearest even).
    DType kv_dtype = DType::kF32;
    // KV blocks in the pool; 0: enough for max_batch_size sequences of the
    // model's full context.
    int64_t kv_blocks = 0;
    // The pool's memory (KvStorageBytes bytes at least, host-addressable),
    // allocated on the execution device so that its accounting counts it as
    // MemoryKind::kKv; null: host memory the device layer does not count.
    std::shared_ptr<Buffer> kv_storage;
    // New requests take the cached blocks of their prompt's prefix.
    bool prefix_caching = true;
    // Called on the worker thread after every step (optional).
    std::function<void(const StepStats&)> on_step;
    // Called on the worker thread when a forward fails for a reason that
    // will not pass by itself — the weights cannot be read (DATA_LOSS: an
    // offload file truncated under the daemon) — after the requests of that
    // step were failed with it (optional).
    std::function<void(const absl::Status&)> on_fault;
  };

  Engine(LoadedModel model, Options options);
  // Bytes of the KV block pool an engine of `model` with `options` holds.
  static int64_t KvStorageBytes(const CausalLM& model, const Options& options) {
    return KvBlockPool::StorageBytes(PoolOptions(model, options));
  }
  ~Engine();  // Shutdown(), then joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues `job`. RESOURCE_EXHAUSTED when max_queued jobs already wait
  // (undelivered ones included, see AddUndelivered),
  // UNAVAILABLE once Shutdown has begun; on error on_done is not called.
  // A request longer (prompt + max_new_tokens) than the whole KV pool holds
  // ends through on_done with RESOURCE_EXHAUSTED.
  absl::Status Submit(std::shared_ptr<GenerationJob> job);

  // Stops accepting; the worker finishes the running and queued jobs and exits.
  void Shutdown();

  // Tells the worker that a paused job may be ready again (its reader caught
  // up) or was cancelled. Cheap; any thread.
  void Wake();

  const LoadedModel& model() const { return model_; }
  const std::string& name() const { return options_.name; }
  int64_t max_batch_size() const { return options_.max_batch_size; }
  int64_t kv_total_blocks() const { return pool_.num_blocks(); }
  int64_t kv_block_bytes() const;
  int running() const { return running_count_.load(); }
  int waiting() const { return waiting_count_.load(); }
  // Requests whose generation has ended but whose output their clients have
  // not read yet: they hold memory (their queued output) and count against
  // max_queued as waiting requests do. The caller adds 1 when such a request
  // ends and -1 once its output is delivered or dropped. Any thread.
  void AddUndelivered(int delta) { undelivered_count_.fetch_add(delta); }
  int undelivered() const { return undelivered_count_.load(); }
  // Blocks referenced by sequences (not counting those the prefix cache
  // alone holds), as of the last step.
  int64_t kv_used_blocks() const { return kv_used_.load(); }

 private:
  struct Active {
    std::shared_ptr<GenerationJob> job;
    std::unique_ptr<Sequence> seq;
    int64_t id = 0;
    bool started = false;     // on_start called
    bool in_running = false;  // counted in running_count_ (else waiting_count_)
    std::chrono::steady_clock::time_point submitted;
  };

  static KvBlockPool::Options PoolOptions(const CausalLM& model, const Options& options);
  void WorkerLoop();
  // One step over waiting_ and running_. False when it computed nothing
  // although sequences run (all of them paused).
  bool Step();
  // Ends a step: fills in the pool's counts and the step's time, and hands
  // the stats to on_step. Every step calls it, the ones that computed
  // nothing too, so the gauges never keep a retired sequence's blocks.
  void Publish(StepStats& stats, std::chrono::steady_clock::time_point t0);
  // Frees the blocks of the running sequence at `it` and puts it at the
  // queue's front, to be recomputed when it runs again.
  void Preempt(std::vector<Active>::iterator it);
  // Ends `a`: on_start if it never ran, then on_done; its blocks are freed.
  void Retire(Active& a, absl::StatusOr<GenerationResult> result);
  bool Cancelled(const Active& a) const { return a.job->cancelled && a.job->cancelled(); }

  LoadedModel model_;
  Options options_;
  KvBlockPool pool_;
  SchedulerOptions scheduler_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Submitted jobs and when, guarded by mu_.
  std::deque<std::pair<std::shared_ptr<GenerationJob>, std::chrono::steady_clock::time_point>> incoming_;
  bool stopping_ = false;  // guarded by mu_
  bool wake_ = false;      // guarded by mu_

  // Worker thread only.
  std::deque<Active> waiting_;
  std::vector<Active> running_;  // in admission order
  int64_t next_id_ = 0;
  std::vector<float> logits_;

  std::atomic<int> running_count_{0};
  std::atomic<int> waiting_count_{0};  // incoming + waiting
  std::atomic<int> undelivered_count_{0};
  std::atomic<int64_t> kv_used_{0};
  std::thread worker_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_ENGINE_ENGINE_H_
