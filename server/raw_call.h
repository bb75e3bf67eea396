// The gRPC front ends take every request as raw bytes (gRPC's raw callback
// methods) and parse it themselves, so that a request that is not valid
// protobuf (or carries a string field that is not UTF-8) answers
// INVALID_ARGUMENT naming the message it should have been: gRPC's typed
// callback handlers answer such a request UNIMPLEMENTED with no message.
// This file holds the parsing and the unary call that owns a parsed request
// and its response.
#ifndef TIERSERVE_SERVER_RAW_CALL_H_
#define TIERSERVE_SERVER_RAW_CALL_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "server/serving_context.h"

namespace tierserve {

// Parses a request's bytes into `msg`: INVALID_ARGUMENT when they are not
// that message. `hint` ends the message (which protos to use).
template <typename Message>
grpc::Status ParseRequest(const grpc::ByteBuffer& bytes, Message* msg, const char* hint) {
  grpc::ByteBuffer copy(bytes);  // deserializing consumes the buffer; a copy shares the slices
  if (grpc::SerializationTraits<Message>::Deserialize(&copy, msg).ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("the request is not a valid ", Message::descriptor()->full_name(),
                                   ": its bytes do not parse as that protobuf message, or a string "
                                   "field is not UTF-8 (",
                                   hint, ")"));
}

// A unary call: the reactor, which owns the parsed request and the response
// until gRPC is done with the call.
class UnaryReply : public grpc::ServerUnaryReactor {
 public:
  // Serializes the response when `status` is OK, and ends the call.
  virtual void Reply(const grpc::Status& status) = 0;
  // The model the request names ("" when its message has no model field).
  virtual std::string model() const = 0;
  void OnDone() override { delete this; }
};

template <typename Request, typename Response>
class UnaryCall final : public UnaryReply {
 public:
  explicit UnaryCall(grpc::ByteBuffer* out) : out_(out) {}
  void Reply(const grpc::Status& status) override {
    grpc::Status s = status;
    bool own_buffer = false;
    if (s.ok()) s = grpc::SerializationTraits<Response>::Serialize(response, out_, &own_buffer);
    Finish(s);
  }
  std::string model() const override {
    if constexpr (requires { request.model(); }) {
      return std::string(request.model());
    } else if constexpr (requires { request.model_name(); }) {
      return std::string(request.model_name());
    } else {
      return "";
    }
  }
  Request request;
  Response response;

 private:
  grpc::ByteBuffer* out_;  // gRPC's, alive until the call is done
};

// Ends a unary call counted in with ServingContext::CallStarted, and reports it.
inline void FinishUnary(UnaryReply* call, ServingContext& serving, const char* method, Clock::time_point t0,
                        const grpc::Status& status) {
  serving.CallEnded(method, status.error_code(), SecondsSince(t0), call->model());
  call->Reply(status);
}

// Counts a unary call in, parses its request, then runs
// `run(request, response, call)`, which ends it through FinishUnary.
template <typename Request, typename Response, typename Run>
grpc::ServerUnaryReactor* StartUnary(const grpc::ByteBuffer* in, grpc::ByteBuffer* out, ServingContext& serving,
                                     const char* method, const char* hint, Run run) {
  serving.CallStarted();
  auto* call = new UnaryCall<Request, Response>(out);
  if (grpc::Status parsed = ParseRequest(*in, &call->request, hint); !parsed.ok()) {
    FinishUnary(call, serving, method, Clock::now(), parsed);
    return call;
  }
  run(call->request, &call->response, call);
  return call;
}

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_RAW_CALL_H_
