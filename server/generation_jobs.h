// Running a gRPC call's validated requests on a model's engine, the two ways
// the front ends need: every prompt of a call to one reply (Generate,
// ModelInfer), or one prompt's text deltas into a stream (GenerateStream,
// ModelStreamInfer). Both report to the ServingContext's observer (time to
// first token, token counts, queue and run transitions) and end their jobs
// when the call is cancelled, passes its deadline or the server aborts.
//
// Thread-safety: free functions; their callbacks run on the engine's thread.
#ifndef TIERSERVE_SERVER_GENERATION_JOBS_H_
#define TIERSERVE_SERVER_GENERATION_JOBS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/engine/engine.h"
#include "server/serving_context.h"
#include "server/stream_output.h"

namespace tierserve {

// Runs `requests` (one call's prompts, validated for `model`) on `engine`,
// then calls `done` once with every result in order, or the first error
// (a job cancelled with the call reports ServingContext::CancelledStatus).
// If a job cannot be queued, those already queued are cancelled and `done`
// gets the queue's error once they have reported. `ctx` is the call's and
// must stay alive until `done` runs.
void RunToCompletion(ServingContext& serving, Engine* engine, const std::string& model,
                     std::vector<GenerationRequest> requests, grpc::CallbackServerContext* ctx,
                     Clock::time_point t0,
                     std::function<void(absl::StatusOr<std::vector<GenerationResult>>)> done);

// What a streaming job does with its output. Both run on the engine's thread.
struct StreamJobHooks {
  // One step's delta (its text may be empty).
  std::function<void(const GenerationDelta&)> on_delta;
  // The end: the result, or the error (a job cancelled with the call reports
  // ServingContext::CancelledStatus). `output->RequestEnded(engine)` follows.
  std::function<void(absl::StatusOr<GenerationResult>)> on_end;
};

// Queues one streaming job of a request that `output` has counted in
// (StreamOutput::RequestStarted): paused while the output is not Ready,
// cancelled with the call. On error (queue full, draining) nothing was
// queued, no hook runs, and the caller ends the request.
absl::Status SubmitStreamJob(ServingContext& serving, Engine* engine, const std::string& model,
                             GenerationRequest request, grpc::CallbackServerContext* ctx,
                             std::shared_ptr<StreamOutput> output, Clock::time_point t0, StreamJobHooks hooks);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_GENERATION_JOBS_H_
