// What the gRPC front ends over the engines share (tierserve.v1.Generation
// and inference.GRPCInferenceService on the same server): the model table,
// the API-key check, the observer that records metrics, the count of calls
// in flight, and the state of a shutdown (draining, then aborting).
//
// Every call a front end counts in with CallStarted ends through CallEnded,
// which reports it to the observer; the daemon's drain waits for
// ActiveCalls() to reach 0.
//
// Thread-safety: thread-safe; the setters are for before the server starts.
#ifndef TIERSERVE_SERVER_SERVING_CONTEXT_H_
#define TIERSERVE_SERVER_SERVING_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "server/model_table.h"

namespace tierserve {

// Hooks for observability; every member is optional. Called from gRPC and
// engine threads.
struct ServiceObserver {
  // One finished RPC: the configured model it asked for ("" when it named
  // none, or a name no model has: the label stays bounded), method name, gRPC
  // status code, seconds end to end.
  std::function<void(const std::string& model, const std::string& method, grpc::StatusCode code,
                     double seconds)>
      on_request;
  // The first token of a sequence of `model`, `seconds` after its call began.
  std::function<void(const std::string& model, double seconds)> on_first_token;
  // A sequence of `model` ended with these token counts.
  std::function<void(const std::string& model, int64_t prompt_tokens, int64_t generated)> on_sequence;
  // A job of `model` entered the queue (+1, 0), started (-1, +1) or ended (0, -1).
  std::function<void(const std::string& model, int waiting_delta, int running_delta)> on_job;
};

// absl::Status -> grpc::Status (the codes are the same numbers).
grpc::Status ToGrpcStatus(const absl::Status& s);
// grpc::Status -> absl::Status.
absl::Status ToAbslStatus(const grpc::Status& s);

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t0);

class ServingContext {
 public:
  explicit ServingContext(ServiceObserver observer = {});
  ServingContext(const ServingContext&) = delete;
  ServingContext& operator=(const ServingContext&) = delete;

  ModelTable& models() { return models_; }
  const ModelTable& models() const { return models_; }
  const ServiceObserver& observer() const { return observer_; }

  // Runs first on every keyed call (the API-key check); a non-OK status ends
  // the call with it.
  void set_authorize(std::function<grpc::Status(const grpc::ServerContextBase&)> authorize) {
    authorize_ = std::move(authorize);
  }
  // OK, or the authorize status.
  absl::Status Authorize(const grpc::ServerContextBase& ctx) const;
  // Authorize, then the model's lookup in the table.
  absl::StatusOr<ModelHandle> FindModelFor(const grpc::ServerContextBase& ctx, const std::string& name) const;

  // Output a streaming call may hold that its client has not read; past it
  // the call's requests pause until the client reads. Default 256 KiB.
  void set_max_unread_stream_bytes(size_t bytes) { max_unread_stream_bytes_ = bytes; }
  size_t max_unread_stream_bytes() const { return max_unread_stream_bytes_; }

  // A call (or one request of a stream) began.
  void CallStarted() { active_calls_.fetch_add(1); }
  // It ended: reported to the observer as `method` of `model` (the name the
  // request gave, if any) with `code`, and counted out.
  void CallEnded(const std::string& method, grpc::StatusCode code, double seconds,
                 const std::string& model = "");
  // Calls that have started and not yet ended.
  int ActiveCalls() const { return active_calls_.load(); }

  // Stops every engine from accepting work (new work fails with
  // UNAVAILABLE); running work finishes. ServerReady answers false from now.
  void Drain();
  bool draining() const { return draining_.load(); }
  // Ends the work still running at its next step: calls fail with UNAVAILABLE
  // (the grace period of a shutdown has passed).
  void AbortAll() { aborting_ = true; }
  bool aborting() const { return aborting_.load(); }

  // The status of a call whose work was cancelled: by AbortAll (UNAVAILABLE),
  // by its deadline (DEADLINE_EXCEEDED) or by its client (CANCELLED).
  // `ctx` is the call's, alive until the call finishes.
  absl::Status CancelledStatus(const grpc::CallbackServerContext* ctx) const;

 private:
  ServiceObserver observer_;
  std::function<grpc::Status(const grpc::ServerContextBase&)> authorize_;
  size_t max_unread_stream_bytes_ = 256 << 10;
  std::atomic<int> active_calls_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> aborting_{false};
  // Last, so destroyed first: an engine's destructor ends its jobs, whose
  // callbacks report through the members above.
  ModelTable models_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_SERVING_CONTEXT_H_
