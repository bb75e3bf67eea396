// inference.GRPCInferenceService: the KServe v2 / Open Inference Protocol
// over gRPC as Triton serves it (proto/inference/grpc_service.proto), so
// that tritonclient and Triton's tooling talk to tierserve unchanged. It is
// a second front end over the same ServingContext as tierserve.v1.Generation:
// the same models, request validation, API-key check, metrics (the `method`
// label is the KServe method's name), deadlines, cancellation, shutdown and
// slow-reader bound. The protocol's tensors and parameters are read in
// kserve_request.h.
//
// Which calls need a key (when API keys are configured): every one, except
// that ServerLive and ServerReady are open when server.open_services lists
// health — they are the protocol's liveness and readiness probes, and probes
// carry no key.
//
// Thread-safety: gRPC calls the handlers concurrently; the service keeps no
// mutable state of its own.
#ifndef TIERSERVE_SERVER_KSERVE_SERVICE_H_
#define TIERSERVE_SERVER_KSERVE_SERVICE_H_

#include <string>
#include <vector>

#include "inference/grpc_service.grpc.pb.h"
#include "server/inference_statistics.h"
#include "server/kserve_request.h"
#include "server/raw_call.h"
#include "server/serving_context.h"

namespace tierserve {

// Every method takes its request as raw bytes and parses it (raw_call.h).
using KServeServiceBase = inference::GRPCInferenceService::WithRawCallbackMethod_ServerLive<
    inference::GRPCInferenceService::WithRawCallbackMethod_ServerReady<
        inference::GRPCInferenceService::WithRawCallbackMethod_ModelReady<
            inference::GRPCInferenceService::WithRawCallbackMethod_ServerMetadata<
                inference::GRPCInferenceService::WithRawCallbackMethod_ModelMetadata<
                    inference::GRPCInferenceService::WithRawCallbackMethod_ModelConfig<
                        inference::GRPCInferenceService::WithRawCallbackMethod_ModelStatistics<
                            inference::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
                                inference::GRPCInferenceService::WithRawCallbackMethod_ModelStreamInfer<
                                    inference::GRPCInferenceService::Service>>>>>>>>>;

class KServeService final : public KServeServiceBase {
 public:
  struct Options {
    // ServerLive and ServerReady are answered without the key check.
    bool probes_open = true;
    // ServerMetadata.version: the daemon's version.
    std::string version;
    // What ModelStatistics reports. Required; not owned, must outlive the
    // service.
    const InferenceStatistics* statistics = nullptr;
  };
  // `serving` is not owned and must outlive the service.
  KServeService(ServingContext* serving, Options options)
      : serving_(*serving), options_(std::move(options)), statistics_(*options_.statistics) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                           grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                          grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                        grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                            grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                       grpc::ByteBuffer* resp) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* ctx) override;

  // A ModelInferRequest checked and validated for its model: what to run.
  struct PreparedInfer {
    ModelHandle model;
    kserve::TextInput input;
    kserve::InferOptions options;
    std::vector<GenerationRequest> requests;  // one per prompt
  };
  // Looks the model up (no key check: the caller's) and validates the
  // request. `streaming`: one prompt per request.
  absl::StatusOr<PreparedInfer> Prepare(const inference::ModelInferRequest& req, bool streaming) const;

 private:
  // The probes' key check: none when they are open.
  absl::Status AuthorizeProbe(const grpc::ServerContextBase& ctx) const;
  // The key check, then `name` must be a configured model (loaded or not)
  // and `version` "" or "1": what the model description methods ask.
  absl::Status AuthorizeConfiguredModel(const grpc::ServerContextBase& ctx, const std::string& name,
                                        const std::string& version) const;
  void RunModelInfer(grpc::CallbackServerContext* ctx, const inference::ModelInferRequest& req,
                     inference::ModelInferResponse* resp, UnaryReply* call);

  ServingContext& serving_;
  const Options options_;
  const InferenceStatistics& statistics_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_KSERVE_SERVICE_H_
