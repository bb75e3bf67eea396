// Serves generation requests for one loaded model: a bounded queue and a
// worker thread that runs each request to completion, one at a time.
// (Continuous batching replaces the one-at-a-time loop with a scheduler that
// steps many sequences together; the interface stays.)
//
// Ownership: the Engine owns the model. Callbacks of a job run on the worker
// thread; they must not block for long.
// Thread-safety: Submit, Shutdown and the counters are thread-safe.
#ifndef TIERSERVE_RUNTIME_ENGINE_ENGINE_H_
#define TIERSERVE_RUNTIME_ENGINE_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "runtime/generate/generator.h"
#include "runtime/model/model_loader.h"

namespace tierserve {

// One sequence to generate, with the caller's hooks.
struct GenerationJob {
  GenerationRequest request;
  // Sees each step's delta; returning false cancels (optional).
  std::function<bool(const GenerationDelta&)> on_delta;
  // Called when the worker takes the job from the queue (optional).
  std::function<void()> on_start;
  // Polled before the job starts and at every step (optional): true cancels.
  std::function<bool()> cancelled;
  // Called exactly once with the result or the error (required).
  std::function<void(absl::StatusOr<GenerationResult>)> on_done;
};

class Engine {
 public:
  struct Options {
    std::string name;
    int max_queued = 256;  // jobs waiting beyond this are refused
  };

  Engine(LoadedModel model, Options options);
  ~Engine();  // Shutdown(), then joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues `job`. RESOURCE_EXHAUSTED when max_queued jobs already wait,
  // UNAVAILABLE once Shutdown has begun; on error on_done is not called.
  absl::Status Submit(std::shared_ptr<GenerationJob> job);

  // Stops accepting; the worker finishes the running and queued jobs and exits.
  void Shutdown();

  const LoadedModel& model() const { return model_; }
  const std::string& name() const { return options_.name; }
  int running() const { return running_.load(); }
  int waiting() const;

 private:
  void WorkerLoop();

  LoadedModel model_;
  Options options_;
  Generator generator_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerationJob>> queue_;  // guarded by mu_
  bool stopping_ = false;                             // guarded by mu_
  std::atomic<int> running_{0};
  std::thread worker_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_ENGINE_ENGINE_H_
