// The tierserve.v1.Generation gRPC service over the engines of the loaded
// models. Requests are validated here, once, into runtime types; statuses
// follow DESIGN.md (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED,
// UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED), each message saying what was
// wrong and what is allowed. The models, the key check, the metrics and the
// shutdown state are the ServingContext's, shared with the other front end
// (kserve_service.h).
//
// Thread-safety: gRPC calls the handlers concurrently; the service keeps no
// state of its own.
#ifndef TIERSERVE_SERVER_GENERATION_SERVICE_H_
#define TIERSERVE_SERVER_GENERATION_SERVICE_H_

#include "server/raw_call.h"
#include "server/serving_context.h"
#include "tierserve/v1/generation.grpc.pb.h"

namespace tierserve {

// Every method takes its request as raw bytes and parses it (raw_call.h).
using GenerationServiceBase = v1::Generation::WithRawCallbackMethod_Generate<
    v1::Generation::WithRawCallbackMethod_GenerateStream<v1::Generation::WithRawCallbackMethod_Tokenize<
        v1::Generation::WithRawCallbackMethod_ListModels<v1::Generation::Service>>>>;

class GenerationService final : public GenerationServiceBase {
 public:
  // `serving` is not owned and must outlive the service.
  explicit GenerationService(ServingContext* serving) : serving_(*serving) {}

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

  ServingContext& serving_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_GENERATION_SERVICE_H_
