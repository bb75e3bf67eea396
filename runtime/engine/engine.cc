#include "runtime/engine/engine.h"

#include "absl/strings/str_cat.h"

namespace tierserve {

Engine::Engine(LoadedModel model, Options options)
    : model_(std::move(model)),
      options_(std::move(options)),
      generator_(model_.model.get(), model_.tokenizer.get()),
      worker_([this] { WorkerLoop(); }) {}

Engine::~Engine() {
  Shutdown();
  worker_.join();
}

absl::Status Engine::Submit(std::shared_ptr<GenerationJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return absl::UnavailableError(absl::StrCat("model ", options_.name, " is shutting down"));
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", options_.name, " has ", queue_.size(),
          " requests waiting, the most max_queued_requests allows; retry later"));
    }
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void Engine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

int Engine::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

void Engine::WorkerLoop() {
  for (;;) {
    std::shared_ptr<GenerationJob> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      job = std::move(queue_.front());
      queue_.pop_front();
      running_.fetch_add(1);
    }
    if (job->on_start) job->on_start();
    absl::StatusOr<GenerationResult> result =
        absl::CancelledError("the request was cancelled before it started");
    if (!(job->cancelled && job->cancelled())) {
      auto on_delta = [&](const GenerationDelta& d) {
        if (job->on_delta && !job->on_delta(d)) return false;
        return !(job->cancelled && job->cancelled());
      };
      result = generator_.Generate(job->request, on_delta);
    }
    // No longer running once its result is handed over: whoever waits on
    // on_done sees the count without it.
    running_.fetch_sub(1);
    job->on_done(std::move(result));
  }
}

}  // namespace tierserve
