#include "server/kserve_service.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/status_macros.h"
#include "server/generation_jobs.h"
#include "server/request_validation.h"
#include "server/stream_output.h"

namespace tierserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr char kProtoHint[] = "use the inference.GRPCInferenceService protos, as tritonclient does";
constexpr char kPlatform[] = "tierserve";
constexpr char kStreamMethod[] = "ModelStreamInfer";

// What every response to a request repeats of it.
struct RequestEcho {
  std::string model_name;
  std::string id;
  std::vector<int64_t> shape;  // of text_input, and so of text_output
  bool raw = false;            // answer in raw_output_contents
  bool empty_final = false;    // a stream's last response carries no output
};

RequestEcho EchoOf(const ModelInferRequest& req) {
  RequestEcho echo;
  echo.model_name = req.model_name();
  echo.id = req.id();
  return echo;
}

ModelInferResponse ResponseTo(const RequestEcho& echo) {
  ModelInferResponse resp;
  resp.set_model_name(echo.model_name);
  resp.set_model_version(kserve::kModelVersion);
  resp.set_id(echo.id);
  return resp;
}

void SetParameter(ModelInferResponse* resp, const char* name, int64_t value) {
  (*resp->mutable_parameters())[name].set_int64_param(value);
}
void SetParameter(ModelInferResponse* resp, const char* name, const std::string& value) {
  (*resp->mutable_parameters())[name].set_string_param(value);
}
void SetParameter(ModelInferResponse* resp, const char* name, bool value) {
  (*resp->mutable_parameters())[name].set_bool_param(value);
}

void AddTensorMetadata(const char* name, inference::ModelMetadataResponse::TensorMetadata* t) {
  t->set_name(name);
  t->set_datatype(kserve::kBytes);
  t->add_shape(-1);
}

void SetDuration(const InferenceStatistics::Duration& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

// A ModelStreamInfer call: requests are read one at a time and each starts
// at once; their responses, queued from the engines' threads, are written
// through a StreamOutput, which also holds reading back while the client
// leaves too much output unread. Each request is counted and reported to the
// metrics on its own (method ModelStreamInfer, the code of its error, if
// any); the call ends with OK once the client has closed its side and every
// request is answered.
class InferStreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                                 public StreamOutput::Call {
 public:
  InferStreamReactor(const KServeService& service, ServingContext& serving, grpc::CallbackServerContext* ctx)
      : service_(service),
        serving_(serving),
        ctx_(ctx),
        output_(std::make_shared<StreamOutput>(this, serving.max_unread_stream_bytes())) {
    // The key is checked once for the stream: its metadata comes with it.
    if (absl::Status auth = serving_.Authorize(*ctx); !auth.ok()) {
      serving_.CallStarted();
      serving_.CallEnded(kStreamMethod, static_cast<grpc::StatusCode>(auth.code()), 0);
      output_->SetStatus(ToGrpcStatus(auth));
      output_->EndInput();
      return;
    }
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::StartRead(&in_);
  }

  // StreamOutput::Call
  void StartWrite(const grpc::ByteBuffer* message) override {
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::StartWrite(message);
  }
  void StartRead() override { grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::StartRead(&in_); }
  void Finish(const grpc::Status& status) override {
    grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>::Finish(status);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      output_->EndInput();  // the client closed its side (or left)
      return;
    }
    Handle(in_);
    output_->ReadNext();
  }
  void OnWriteDone(bool ok) override { output_->OnWriteDone(ok); }
  void OnCancel() override {
    output_->SetStatus(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream"));
    output_->OnCancel();
  }
  void OnDone() override {
    output_->Detach();
    delete this;
  }

 private:
  // Starts one request of the stream (or answers it with an error).
  void Handle(const grpc::ByteBuffer& bytes) {
    const Clock::time_point t0 = Clock::now();
    if (!output_->RequestStarted()) return;  // cancelled: nobody reads the answer
    serving_.CallStarted();
    ModelInferRequest req;
    if (grpc::Status parsed = ParseRequest(bytes, &req, kProtoHint); !parsed.ok()) {
      Refuse(RequestEcho{}, ToAbslStatus(parsed), t0);
      return;
    }
    RequestEcho echo = EchoOf(req);
    absl::StatusOr<KServeService::PreparedInfer> prepared = service_.Prepare(req, /*streaming=*/true);
    if (!prepared.ok()) {
      Refuse(echo, prepared.status(), t0);
      return;
    }
    echo.shape = prepared->input.shape;
    echo.raw = prepared->input.raw;
    echo.empty_final = prepared->options.empty_final_response;
    Engine* engine = prepared->model.engine;
    std::shared_ptr<StreamOutput> output = output_;
    ServingContext& serving = serving_;
    StreamJobHooks hooks;
    hooks.on_delta = [output, echo](const GenerationDelta& d) {
      if (d.text.empty()) return;  // a token held back (part of a character or of a stop string)
      ModelInferResponse resp = ResponseTo(echo);
      SetParameter(&resp, kserve::kFinalResponse, false);
      kserve::AddTextOutput({d.text}, echo.shape, echo.raw, &resp);
      Send(*output, resp);
    };
    hooks.on_end = [output, echo, t0, &serving](absl::StatusOr<GenerationResult> r) {
      if (!r.ok()) {
        SendError(*output, echo, r.status());
        serving.CallEnded(kStreamMethod, static_cast<grpc::StatusCode>(r.status().code()), SecondsSince(t0),
                          echo.model_name);
        return;
      }
      ModelInferResponse resp = ResponseTo(echo);
      SetParameter(&resp, kserve::kFinalResponse, true);
      SetParameter(&resp, kserve::kFinishReason, std::string(FinishReasonName(r->finish_reason)));
      SetParameter(&resp, kserve::kPromptTokens, r->prompt_tokens);
      SetParameter(&resp, kserve::kCompletionTokens, static_cast<int64_t>(r->tokens.size()));
      if (!echo.empty_final) kserve::AddTextOutput({std::string()}, echo.shape, echo.raw, &resp);
      Send(*output, resp);
      serving.CallEnded(kStreamMethod, grpc::StatusCode::OK, SecondsSince(t0), echo.model_name);
    };
    absl::Status submitted = SubmitStreamJob(serving_, engine, req.model_name(), std::move(prepared->requests[0]),
                                             ctx_, output_, t0, std::move(hooks));
    if (!submitted.ok()) Refuse(echo, submitted, t0);
  }

  // Answers a request that did not start with its error, and ends it.
  void Refuse(const RequestEcho& echo, const absl::Status& status, Clock::time_point t0) {
    SendError(*output_, echo, status);
    serving_.CallEnded(kStreamMethod, static_cast<grpc::StatusCode>(status.code()), SecondsSince(t0),
                       echo.model_name);
    output_->RequestEnded(nullptr);
  }

  // As Triton: error_message, and the request's id and model in
  // infer_response, marked final (the request is over). The message begins
  // with the gRPC code's name, so that a client can tell a retry-able
  // RESOURCE_EXHAUSTED from an INVALID_ARGUMENT.
  static void SendError(StreamOutput& output, const RequestEcho& echo, const absl::Status& status) {
    inference::ModelStreamInferResponse msg;
    msg.set_error_message(absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message()));
    ModelInferResponse* resp = msg.mutable_infer_response();
    *resp = ResponseTo(echo);
    SetParameter(resp, kserve::kFinalResponse, true);
    SendMessage(output, msg);
  }
  static void Send(StreamOutput& output, ModelInferResponse resp) {
    inference::ModelStreamInferResponse msg;
    *msg.mutable_infer_response() = std::move(resp);
    SendMessage(output, msg);
  }
  static void SendMessage(StreamOutput& output, const inference::ModelStreamInferResponse& msg) {
    grpc::ByteBuffer bytes;
    bool own_buffer = false;
    if (grpc::Status s =
            grpc::SerializationTraits<inference::ModelStreamInferResponse>::Serialize(msg, &bytes, &own_buffer);
        !s.ok()) {
      output.SetStatus(s);
      return;
    }
    output.Send(std::move(bytes));
  }

  const KServeService& service_;
  ServingContext& serving_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer in_;  // the request being read
  std::shared_ptr<StreamOutput> output_;
};

}  // namespace

absl::Status KServeService::AuthorizeProbe(const grpc::ServerContextBase& ctx) const {
  return options_.probes_open ? absl::OkStatus() : serving_.Authorize(ctx);
}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                    grpc::ByteBuffer* resp) {
  return StartUnary<inference::ServerLiveRequest, inference::ServerLiveResponse>(
      req, resp, serving_, "ServerLive", kProtoHint,
      [this, ctx](const inference::ServerLiveRequest&, inference::ServerLiveResponse* out, UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        absl::Status auth = AuthorizeProbe(*ctx);
        out->set_live(true);
        FinishUnary(call, serving_, "ServerLive", t0, ToGrpcStatus(auth));
      });
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                     grpc::ByteBuffer* resp) {
  return StartUnary<inference::ServerReadyRequest, inference::ServerReadyResponse>(
      req, resp, serving_, "ServerReady", kProtoHint,
      [this, ctx](const inference::ServerReadyRequest&, inference::ServerReadyResponse* out, UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        absl::Status auth = AuthorizeProbe(*ctx);
        out->set_ready(!serving_.draining() && serving_.models().AllReady());
        FinishUnary(call, serving_, "ServerReady", t0, ToGrpcStatus(auth));
      });
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                    grpc::ByteBuffer* resp) {
  return StartUnary<inference::ModelReadyRequest, inference::ModelReadyResponse>(
      req, resp, serving_, "ModelReady", kProtoHint,
      [this, ctx](const inference::ModelReadyRequest& r, inference::ModelReadyResponse* out, UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        absl::Status auth = serving_.Authorize(*ctx);
        // As Triton: an unknown model or version is not ready, and no error.
        absl::StatusOr<v1::ModelState> state = serving_.models().State(r.name());
        out->set_ready(auth.ok() && state.ok() && *state == v1::MODEL_STATE_READY && !serving_.draining() &&
                       kserve::CheckModelVersion(r.version(), r.name()).ok());
        FinishUnary(call, serving_, "ModelReady", t0, ToGrpcStatus(auth));
      });
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<inference::ServerMetadataRequest, inference::ServerMetadataResponse>(
      req, resp, serving_, "ServerMetadata", kProtoHint,
      [this, ctx](const inference::ServerMetadataRequest&, inference::ServerMetadataResponse* out,
                  UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        absl::Status auth = serving_.Authorize(*ctx);
        out->set_name("tierserve");
        out->set_version(options_.version);
        out->add_extensions("parameters");
        FinishUnary(call, serving_, "ServerMetadata", t0, ToGrpcStatus(auth));
      });
}

absl::Status KServeService::AuthorizeConfiguredModel(const grpc::ServerContextBase& ctx, const std::string& name,
                                                     const std::string& version) const {
  TS_RETURN_IF_ERROR(serving_.Authorize(ctx));
  TS_RETURN_IF_ERROR(serving_.models().State(name).status());
  return kserve::CheckModelVersion(version, name);
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<inference::ModelMetadataRequest, inference::ModelMetadataResponse>(
      req, resp, serving_, "ModelMetadata", kProtoHint,
      [this, ctx](const inference::ModelMetadataRequest& r, inference::ModelMetadataResponse* out,
                  UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        // A configured model is described whether it has loaded or not: its
        // tensors are the same.
        const absl::Status s = AuthorizeConfiguredModel(*ctx, r.name(), r.version());
        if (s.ok()) {
          out->set_name(r.name());
          out->add_versions(kserve::kModelVersion);
          out->set_platform(kPlatform);
          AddTensorMetadata(kserve::kTextInput, out->add_inputs());
          AddTensorMetadata(kserve::kTextOutput, out->add_outputs());
        }
        FinishUnary(call, serving_, "ModelMetadata", t0, ToGrpcStatus(s));
      });
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(grpc::CallbackServerContext* ctx,
                                                     const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<inference::ModelConfigRequest, inference::ModelConfigResponse>(
      req, resp, serving_, "ModelConfig", kProtoHint,
      [this, ctx](const inference::ModelConfigRequest& r, inference::ModelConfigResponse* out, UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        const absl::Status s = AuthorizeConfiguredModel(*ctx, r.name(), r.version());
        if (s.ok()) {
          inference::ModelConfig* c = out->mutable_config();
          c->set_name(r.name());
          c->set_platform(kPlatform);
          // text_input's shape is [N] or [N, 1] as it is, not a batch of
          // fixed-shape items: no batch dimension in Triton's terms.
          c->set_max_batch_size(0);
          inference::ModelInput* in = c->add_input();
          in->set_name(kserve::kTextInput);
          in->set_data_type(inference::TYPE_STRING);
          in->add_dims(-1);
          inference::ModelOutput* o = c->add_output();
          o->set_name(kserve::kTextOutput);
          o->set_data_type(inference::TYPE_STRING);
          o->add_dims(-1);
          c->mutable_model_transaction_policy()->set_decoupled(true);
        }
        FinishUnary(call, serving_, "ModelConfig", t0, ToGrpcStatus(s));
      });
}

grpc::ServerUnaryReactor* KServeService::ModelStatistics(grpc::CallbackServerContext* ctx,
                                                         const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<inference::ModelStatisticsRequest, inference::ModelStatisticsResponse>(
      req, resp, serving_, "ModelStatistics", kProtoHint,
      [this, ctx](const inference::ModelStatisticsRequest& r, inference::ModelStatisticsResponse* out,
                  UnaryReply* call) {
        const Clock::time_point t0 = Clock::now();
        absl::Status s;
        std::vector<std::string> names;
        if (r.name().empty()) {  // every configured model
          s = serving_.Authorize(*ctx);
          if (s.ok()) s = kserve::CheckModelVersion(r.version(), r.name());
          if (s.ok()) serving_.models().ForEach([&names](const ServedModel& m) { names.push_back(m.name); });
        } else {
          s = AuthorizeConfiguredModel(*ctx, r.name(), r.version());
          names.push_back(r.name());
        }
        if (s.ok()) {
          for (const std::string& name : names) {
            const InferenceStatistics::Model m = statistics_.Get(name);
            inference::ModelStatistics* st = out->add_model_stats();
            st->set_name(name);
            st->set_version(kserve::kModelVersion);
            st->set_last_inference(m.last_inference_ms);
            st->set_inference_count(m.inference_count);
            st->set_execution_count(m.execution_count);
            inference::InferStatistics* is = st->mutable_inference_stats();
            SetDuration(m.success, is->mutable_success());
            SetDuration(m.fail, is->mutable_fail());
            SetDuration(m.queue, is->mutable_queue());
            SetDuration(m.compute_infer, is->mutable_compute_infer());
          }
        }
        FinishUnary(call, serving_, "ModelStatistics", t0, ToGrpcStatus(s));
      });
}

absl::StatusOr<KServeService::PreparedInfer> KServeService::Prepare(const ModelInferRequest& req,
                                                                    bool streaming) const {
  PreparedInfer p;
  TS_ASSIGN_OR_RETURN(p.model, serving_.models().Find(req.model_name()));
  TS_RETURN_IF_ERROR(kserve::CheckModelVersion(req.model_version(), req.model_name()));
  const int64_t max_prompts = streaming ? 1 : p.model.max_batch_size;
  TS_ASSIGN_OR_RETURN(p.input, kserve::ReadTextInput(req, max_prompts,
                                                     streaming ? "ModelStreamInfer streams one prompt per request; "
                                                                 "send several requests on the stream"
                                                               : "the model's max_batch_size"));
  TS_ASSIGN_OR_RETURN(p.options, kserve::ReadParameters(req.parameters()));
  for (size_t i = 0; i < p.input.prompts.size(); ++i) {
    v1::Prompt prompt;
    prompt.set_text(p.input.prompts[i]);
    absl::StatusOr<GenerationRequest> r =
        BuildEngineRequest(*p.model.engine, p.model.limits, prompt, p.options.generation, "max_tokens");
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat(kserve::kTextInput, "[", i, "]: ", r.status().message()));
    }
    p.requests.push_back(*std::move(r));
  }
  return p;
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                    grpc::ByteBuffer* resp) {
  return StartUnary<ModelInferRequest, ModelInferResponse>(
      req, resp, serving_, "ModelInfer", kProtoHint,
      [this, ctx](const ModelInferRequest& r, ModelInferResponse* out, UnaryReply* call) {
        RunModelInfer(ctx, r, out, call);
      });
}

void KServeService::RunModelInfer(grpc::CallbackServerContext* ctx, const ModelInferRequest& req,
                                  ModelInferResponse* resp, UnaryReply* call) {
  const Clock::time_point t0 = Clock::now();
  const absl::Status auth = serving_.Authorize(*ctx);
  absl::StatusOr<PreparedInfer> prepared = auth.ok() ? Prepare(req, /*streaming=*/false) : auth;
  if (!prepared.ok()) {
    FinishUnary(call, serving_, "ModelInfer", t0, ToGrpcStatus(prepared.status()));
    return;
  }
  RequestEcho echo = EchoOf(req);
  echo.shape = prepared->input.shape;
  echo.raw = prepared->input.raw;
  RunToCompletion(serving_, prepared->model.engine, req.model_name(), std::move(prepared->requests), ctx, t0,
                  [this, call, resp, echo, t0](absl::StatusOr<std::vector<GenerationResult>> results) {
                    if (results.ok()) {
                      *resp = ResponseTo(echo);
                      std::vector<std::string> texts;
                      std::vector<std::string> reasons;
                      int64_t prompt_tokens = 0, completion_tokens = 0;
                      for (const GenerationResult& r : *results) {
                        texts.push_back(r.text);
                        reasons.push_back(FinishReasonName(r.finish_reason));
                        prompt_tokens += r.prompt_tokens;
                        completion_tokens += static_cast<int64_t>(r.tokens.size());
                      }
                      SetParameter(resp, kserve::kFinishReason, absl::StrJoin(reasons, ","));
                      SetParameter(resp, kserve::kPromptTokens, prompt_tokens);
                      SetParameter(resp, kserve::kCompletionTokens, completion_tokens);
                      kserve::AddTextOutput(texts, echo.shape, echo.raw, resp);
                    }
                    FinishUnary(call, serving_, "ModelInfer", t0, ToGrpcStatus(results.status()));
                  });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* KServeService::ModelStreamInfer(
    grpc::CallbackServerContext* ctx) {
  return new InferStreamReactor(*this, serving_, ctx);
}

}  // namespace tierserve
