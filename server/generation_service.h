// The tierserve.v1.Generation gRPC service over the engines of the loaded
// models. Requests are validated here, once, into runtime types; statuses
// follow DESIGN.md (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED,
// UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED), each message saying what was
// wrong and what is allowed.
//
// Thread-safety: gRPC calls the handlers concurrently; the service's state
// is the model table, guarded by its mutex.
#ifndef TIERSERVE_SERVER_GENERATION_SERVICE_H_
#define TIERSERVE_SERVER_GENERATION_SERVICE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/engine/engine.h"
#include "server/request_validation.h"
#include "tierserve/v1/generation.grpc.pb.h"

namespace tierserve {

// Hooks for observability; every member is optional. Called from gRPC and
// engine threads.
struct ServiceObserver {
  // One finished RPC: method name, gRPC status code, seconds end to end.
  std::function<void(const std::string& method, grpc::StatusCode code, double seconds)> on_request;
  // The first token of a sequence of `model`, `seconds` after its call began.
  std::function<void(const std::string& model, double seconds)> on_first_token;
  // A sequence of `model` ended with these token counts.
  std::function<void(const std::string& model, int64_t prompt_tokens, int64_t generated)> on_sequence;
  // A job of `model` entered the queue (+1, 0), started (-1, +1) or ended (0, -1).
  std::function<void(const std::string& model, int waiting_delta, int running_delta)> on_job;
};

// A served model: its engine once loaded, and its limits.
struct ServedModel {
  std::string name;
  int64_t max_sequence_length = 0;  // prompt + new tokens; <= the model's context
  int64_t max_batch_size = 1;       // most prompts in one Generate call
  bool parse_special_tokens_in_chat = false;  // see PromptLimits
  std::unique_ptr<Engine> engine;   // null while loading or after a failure
  v1::ModelState state = v1::MODEL_STATE_LOADING;
  std::string state_message;
};

// A unary call whose request and response this service parses and
// serializes itself (defined in generation_service.cc).
class UnaryReply;

// Every method takes its request as raw bytes and parses it here, so that a
// request that is not valid protobuf (or carries a string field that is not
// UTF-8) answers INVALID_ARGUMENT naming the message it should have been:
// gRPC's typed callback handlers answer such a request UNIMPLEMENTED with no
// message.
using GenerationServiceBase = v1::Generation::WithRawCallbackMethod_Generate<
    v1::Generation::WithRawCallbackMethod_GenerateStream<v1::Generation::WithRawCallbackMethod_Tokenize<
        v1::Generation::WithRawCallbackMethod_ListModels<v1::Generation::Service>>>>;

class GenerationService final : public GenerationServiceBase {
 public:
  explicit GenerationService(ServiceObserver observer = {});
  ~GenerationService() override;

  // Registers a model name before it loads (requests get UNAVAILABLE).
  void AddLoading(const std::string& name, int64_t max_sequence_length, int64_t max_batch_size,
                  bool parse_special_tokens_in_chat = false);
  // Marks `name` ready with its engine, or failed with a reason.
  void SetReady(const std::string& name, std::unique_ptr<Engine> engine);
  void SetFailed(const std::string& name, const std::string& reason);
  // Output a GenerateStream may hold that its client has not read; past it
  // the request pauses until the client reads. Default 256 KiB. Set before
  // serving.
  void set_max_unread_stream_bytes(size_t bytes) { max_unread_stream_bytes_ = bytes; }
  // Runs first on every call (the API-key check); a non-OK status ends the
  // call with it. Set before the server starts.
  void set_authorize(std::function<grpc::Status(const grpc::ServerContextBase&)> authorize) {
    authorize_ = std::move(authorize);
  }
  // Stops every engine from accepting work; running work finishes.
  void Drain();
  // Ends the work still running at its next step: calls fail with UNAVAILABLE
  // (the grace period of a shutdown has passed).
  void AbortAll();
  // Calls that have started and not yet finished.
  int ActiveCalls() const { return active_calls_.load(); }

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerateStream(grpc::CallbackServerContext* ctx,
                                                             const grpc::ByteBuffer* req) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;

 private:
  // The methods on parsed requests; each ends its call through `call`.
  void RunGenerate(grpc::CallbackServerContext* ctx, const v1::GenerateRequest& req, v1::GenerateResponse* resp,
                   UnaryReply* call);
  void RunTokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest& req, v1::TokenizeResponse* resp,
                   UnaryReply* call);
  void RunListModels(grpc::CallbackServerContext* ctx, v1::ListModelsResponse* resp, UnaryReply* call);

  // The status of a call whose work was cancelled: by AbortAll (UNAVAILABLE),
  // by its deadline (DEADLINE_EXCEEDED) or by its client (CANCELLED).
  // `ctx` is the call's, alive until the call finishes.
  absl::Status CancelledStatus(const grpc::CallbackServerContext* ctx) const;
  // The engine serving `name`, or NOT_FOUND / UNAVAILABLE.
  absl::StatusOr<Engine*> FindEngine(const std::string& name, PromptLimits* limits) const;
  // The caller's key checked, then FindEngine.
  absl::StatusOr<Engine*> FindEngineFor(const grpc::ServerContextBase& ctx, const std::string& name,
                                        PromptLimits* limits) const;
  // OK, or the authorize_ status as an absl::Status.
  absl::Status Authorize(const grpc::ServerContextBase& ctx) const;
  // The most prompts one Generate call may bring for model `name`.
  int64_t MaxBatchSize(const std::string& name) const;

  ServiceObserver observer_;
  std::function<grpc::Status(const grpc::ServerContextBase&)> authorize_;
  std::atomic<int> active_calls_{0};
  std::atomic<bool> aborting_{false};
  size_t max_unread_stream_bytes_ = 256 << 10;
  mutable std::mutex mu_;
  std::map<std::string, ServedModel> models_;  // guarded by mu_
};

// absl::Status -> grpc::Status (the codes are the same numbers).
grpc::Status ToGrpcStatus(const absl::Status& s);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_GENERATION_SERVICE_H_
