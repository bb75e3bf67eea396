#include "server/serving_context.h"

#include "runtime/base/status_macros.h"

namespace tierserve {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status ToAbslStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

double SecondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

ServingContext::ServingContext(ServiceObserver observer) : observer_(std::move(observer)) {}

absl::Status ServingContext::Authorize(const grpc::ServerContextBase& ctx) const {
  if (!authorize_) return absl::OkStatus();
  return ToAbslStatus(authorize_(ctx));
}

absl::StatusOr<ModelHandle> ServingContext::FindModelFor(const grpc::ServerContextBase& ctx,
                                                         const std::string& name) const {
  TS_RETURN_IF_ERROR(Authorize(ctx));
  return models_.Find(name);
}

void ServingContext::CallEnded(const std::string& method, grpc::StatusCode code, double seconds,
                               const std::string& model) {
  if (observer_.on_request) {
    // Only configured names become label values: a client's arbitrary string never does.
    static const std::string kNone;
    observer_.on_request(!model.empty() && models_.State(model).ok() ? model : kNone, method, code, seconds);
  }
  active_calls_.fetch_sub(1);
}

void ServingContext::Drain() {
  draining_ = true;
  models_.Drain();
}

absl::Status ServingContext::CancelledStatus(const grpc::CallbackServerContext* ctx) const {
  if (aborting_) {
    return absl::UnavailableError(
        "the server is shutting down and the grace period for requests in flight has passed");
  }
  // A client's deadline timer starts before the request reaches the server,
  // so the client's cancel at its deadline can arrive a little before the
  // server's copy of the deadline passes: a cancel that close to the deadline
  // is the deadline.
  constexpr std::chrono::milliseconds kDeadlineSlack(250);
  if (ctx->deadline() <= std::chrono::system_clock::now() + kDeadlineSlack) {
    return absl::DeadlineExceededError("the request's deadline expired before it finished");
  }
  return absl::CancelledError("the client cancelled the request");
}

}  // namespace tierserve
