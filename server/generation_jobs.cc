#include "server/generation_jobs.h"

#include <atomic>
#include <mutex>

namespace tierserve {
namespace {

// Reports a job's queue and run transitions to the observer.
void TrackJob(const ServiceObserver& obs, const std::string& model, GenerationJob* job) {
  if (!obs.on_job) return;
  obs.on_job(model, +1, 0);
  job->on_start = [&obs, model] { obs.on_job(model, -1, +1); };
  job->on_done = [&obs, model, done = std::move(job->on_done)](absl::StatusOr<GenerationResult> r) {
    obs.on_job(model, 0, -1);
    done(std::move(r));
  };
}

// Queues `job` on `engine` with the observer's tracking; on a refusal the
// tracking is undone.
absl::Status Submit(const ServiceObserver& obs, Engine* engine, const std::string& model,
                    std::shared_ptr<GenerationJob> job) {
  TrackJob(obs, model, job.get());
  absl::Status submitted = engine->Submit(std::move(job));
  if (!submitted.ok() && obs.on_job) obs.on_job(model, -1, 0);
  return submitted;
}

// Calls the observer's on_first_token at a job's first delta.
std::function<void()> FirstTokenReporter(const ServiceObserver& obs, const std::string& model,
                                         Clock::time_point t0) {
  auto first = std::make_shared<bool>(true);
  return [&obs, model, t0, first] {
    if (*first && obs.on_first_token) obs.on_first_token(model, SecondsSince(t0));
    *first = false;
  };
}

// State shared by a call and its jobs (one per prompt).
struct PromptJobs {
  std::mutex mu;
  std::vector<absl::StatusOr<GenerationResult>> results;  // guarded by mu
  int remaining = 0;                                       // guarded by mu
  absl::Status error;                                      // first error; guarded by mu
  std::atomic<bool> cancel{false};
};

}  // namespace

void RunToCompletion(ServingContext& serving, Engine* engine, const std::string& model,
                     std::vector<GenerationRequest> requests, grpc::CallbackServerContext* ctx,
                     Clock::time_point t0,
                     std::function<void(absl::StatusOr<std::vector<GenerationResult>>)> done) {
  const ServiceObserver& obs = serving.observer();
  auto state = std::make_shared<PromptJobs>();
  state->results.resize(requests.size(), absl::UnknownError("not run"));
  state->remaining = static_cast<int>(requests.size());
  // Runs once the last job is done (or was never submitted).
  auto complete = [state, done = std::move(done)]() {
    absl::Status error;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      error = state->error;
    }
    std::vector<GenerationResult> results;
    for (auto& r : state->results) {
      if (!error.ok()) break;
      if (!r.ok()) {
        error = r.status();
        break;
      }
      results.push_back(*std::move(r));
    }
    if (!error.ok()) {
      done(error);
    } else {
      done(std::move(results));
    }
  };
  auto finish_one = [state, complete]() {
    bool last;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      last = --state->remaining == 0;
    }
    if (last) complete();
  };

  for (size_t i = 0; i < requests.size(); ++i) {
    auto job = std::make_shared<GenerationJob>();
    job->request = std::move(requests[i]);
    const int64_t prompt_tokens = static_cast<int64_t>(job->request.prompt.size());
    job->cancelled = [&serving, state, ctx] {
      return state->cancel.load() || serving.aborting() || ctx->IsCancelled();
    };
    job->on_delta = [first_token = FirstTokenReporter(obs, model, t0)](const GenerationDelta&) {
      first_token();
      return true;
    };
    job->on_done = [&serving, &obs, state, i, finish_one, model, prompt_tokens,
                    ctx](absl::StatusOr<GenerationResult> r) {
      if (r.ok() && obs.on_sequence) obs.on_sequence(model, prompt_tokens, static_cast<int64_t>(r->tokens.size()));
      if (r.ok() && r->finish_reason == FinishReason::kCancelled) r = serving.CancelledStatus(ctx);
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->results[i] = std::move(r);
      }
      finish_one();
    };
    absl::Status submitted = Submit(obs, engine, model, job);
    if (!submitted.ok()) {
      // The jobs already queued are cancelled; the call ends with this error
      // once they have reported.
      state->cancel = true;
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->error = submitted;
        state->remaining -= static_cast<int>(requests.size() - i - 1);
      }
      finish_one();
      break;
    }
  }
}

absl::Status SubmitStreamJob(ServingContext& serving, Engine* engine, const std::string& model,
                             GenerationRequest request, grpc::CallbackServerContext* ctx,
                             std::shared_ptr<StreamOutput> output, Clock::time_point t0, StreamJobHooks hooks) {
  const ServiceObserver& obs = serving.observer();
  auto job = std::make_shared<GenerationJob>();
  job->request = std::move(request);
  const int64_t prompt_tokens = static_cast<int64_t>(job->request.prompt.size());
  output->AddEngine(engine);
  job->cancelled = [&serving, output, ctx] {
    return output->cancelled() || serving.aborting() || ctx->IsCancelled();
  };
  job->ready = [output] { return output->Ready(); };
  job->on_delta = [first_token = FirstTokenReporter(obs, model, t0),
                   on_delta = std::move(hooks.on_delta)](const GenerationDelta& d) {
    first_token();
    on_delta(d);
    return true;
  };
  job->on_done = [&serving, &obs, output, engine, model, prompt_tokens, ctx,
                  on_end = std::move(hooks.on_end)](absl::StatusOr<GenerationResult> r) {
    if (r.ok() && obs.on_sequence) obs.on_sequence(model, prompt_tokens, static_cast<int64_t>(r->tokens.size()));
    if (r.ok() && r->finish_reason == FinishReason::kCancelled) r = serving.CancelledStatus(ctx);
    on_end(std::move(r));
    output->RequestEnded(engine);
  };
  return Submit(obs, engine, model, std::move(job));
}

}  // namespace tierserve
