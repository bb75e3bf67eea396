#include "server/generation_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/placement/module_report.h"
#include "server/generation_jobs.h"
#include "server/request_validation.h"
#include "server/stream_output.h"

namespace tierserve {
namespace {

constexpr char kProtoHint[] = "use the tierserve.v1 protos";

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kEos: return v1::FINISH_REASON_EOS;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void FillToken(const Tokenizer& tok, const SampledToken& t, bool logprobs, v1::Token* out) {
  out->set_id(t.id);
  out->set_piece(tok.TokenBytes(t.id));
  out->set_special(tok.IsSpecial(t.id));
  if (logprobs) out->set_logprob(t.logprob);
  for (const TokenLogprob& alt : t.top_logprobs) {
    v1::TokenLogprob* a = out->add_top_logprobs();
    a->set_id(alt.id);
    a->set_piece(tok.TokenBytes(alt.id));
    a->set_logprob(alt.logprob);
  }
}

bool WantsLogprobs(const v1::GenerationParameters& p) { return p.logprobs() || p.top_logprobs() > 0; }

// A GenerateStream call: the messages its job produces on the engine thread
// are written through a StreamOutput; the final status follows the last
// write, and the call is reported then (the duration is to the last byte).
class GenerateStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>, public StreamOutput::Call {
 public:
  GenerateStreamReactor(ServingContext& serving)
      : serving_(serving), output_(std::make_shared<StreamOutput>(this, serving.max_unread_stream_bytes())) {
    serving_.CallStarted();
  }
  const std::shared_ptr<StreamOutput>& output() { return output_; }
  // Ends the call with `status` before any request ran.
  void Refuse(const grpc::Status& status) {
    output_->SetStatus(status);
    output_->EndInput();
  }

  // Engine thread: queue a message.
  void Send(const v1::GenerateStreamResponse& msg) {
    grpc::ByteBuffer bytes;
    bool own_buffer = false;
    if (grpc::Status s = grpc::SerializationTraits<v1::GenerateStreamResponse>::Serialize(msg, &bytes, &own_buffer);
        !s.ok()) {
      output_->SetStatus(s);
      return;
    }
    output_->Send(std::move(bytes));
  }

  // StreamOutput::Call
  void StartWrite(const grpc::ByteBuffer* message) override {
    grpc::ServerWriteReactor<grpc::ByteBuffer>::StartWrite(message);
  }
  void Finish(const grpc::Status& status) override {
    serving_.CallEnded("GenerateStream", status.error_code(), SecondsSince(start), model);
    grpc::ServerWriteReactor<grpc::ByteBuffer>::Finish(status);
  }

  void OnWriteDone(bool ok) override { output_->OnWriteDone(ok); }
  void OnCancel() override { output_->OnCancel(); }
  void OnDone() override {
    output_->Detach();
    delete this;
  }

  const Clock::time_point start = Clock::now();
  std::string model;  // as the request named it (set before any job starts)

 private:
  ServingContext& serving_;
  std::shared_ptr<StreamOutput> output_;
};

}  // namespace

grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<v1::GenerateRequest, v1::GenerateResponse>(
      req, resp, serving_, "Generate", kProtoHint,
      [this, ctx](const v1::GenerateRequest& r, v1::GenerateResponse* out, UnaryReply* call) {
        RunGenerate(ctx, r, out, call);
      });
}

void GenerationService::RunGenerate(grpc::CallbackServerContext* ctx, const v1::GenerateRequest& req,
                                    v1::GenerateResponse* resp, UnaryReply* reactor) {
  const Clock::time_point t0 = Clock::now();
  auto fail = [&](const absl::Status& s) { FinishUnary(reactor, serving_, "Generate", t0, ToGrpcStatus(s)); };
  absl::StatusOr<ModelHandle> model = serving_.FindModelFor(*ctx, req.model());
  if (!model.ok()) return fail(model.status());
  if (req.prompts().empty()) return fail(absl::InvalidArgumentError("no prompts; send at least one"));
  if (req.prompts_size() > model->max_batch_size) {
    return fail(absl::InvalidArgumentError(absl::StrCat(req.prompts_size(), " prompts; at most ", model->max_batch_size,
                                                        " per call (the model's max_batch_size)")));
  }
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < req.prompts_size(); ++i) {
    absl::StatusOr<GenerationRequest> r = BuildEngineRequest(*model->engine, model->limits, req.prompts(i),
                                                             req.parameters());
    if (!r.ok()) return fail(absl::Status(r.status().code(), absl::StrCat("prompts[", i, "]: ", r.status().message())));
    requests.push_back(*std::move(r));
  }
  const bool logprobs = WantsLogprobs(req.parameters());
  Engine* e = model->engine;
  RunToCompletion(serving_, e, req.model(), std::move(requests), ctx, t0,
                  [this, reactor, resp, t0, e, logprobs](absl::StatusOr<std::vector<GenerationResult>> results) {
                    if (results.ok()) {
                      for (const GenerationResult& r : *results) {
                        v1::Completion* c = resp->add_completions();
                        c->set_text(r.text);
                        for (const SampledToken& t : r.tokens) {
                          FillToken(*e->model().tokenizer, t, logprobs, c->add_tokens());
                        }
                        c->set_finish_reason(ToProto(r.finish_reason));
                        c->mutable_usage()->set_prompt_tokens(static_cast<int32_t>(r.prompt_tokens));
                        c->mutable_usage()->set_completion_tokens(static_cast<int32_t>(r.tokens.size()));
                      }
                    }
                    FinishUnary(reactor, serving_, "Generate", t0, ToGrpcStatus(results.status()));
                  });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerationService::GenerateStream(grpc::CallbackServerContext* ctx,
                                                                              const grpc::ByteBuffer* bytes) {
  auto* reactor = new GenerateStreamReactor(serving_);
  v1::GenerateStreamRequest req;
  if (grpc::Status parsed = ParseRequest(*bytes, &req, kProtoHint); !parsed.ok()) {
    reactor->Refuse(parsed);
    return reactor;
  }
  reactor->model = req.model();
  absl::StatusOr<ModelHandle> model = serving_.FindModelFor(*ctx, req.model());
  absl::StatusOr<GenerationRequest> request =
      model.ok() ? BuildEngineRequest(*model->engine, model->limits, req.prompt(), req.parameters())
                 : model.status();
  if (!request.ok()) {
    reactor->Refuse(ToGrpcStatus(request.status()));
    return reactor;
  }
  Engine* e = model->engine;
  const bool logprobs = WantsLogprobs(req.parameters());
  std::shared_ptr<StreamOutput> output = reactor->output();
  if (!output->RequestStarted()) {
    reactor->Refuse(ToGrpcStatus(serving_.CancelledStatus(ctx)));
    return reactor;
  }
  output->EndInput();  // one request: the call ends with it
  StreamJobHooks hooks;
  hooks.on_delta = [reactor, e, logprobs](const GenerationDelta& d) {
    v1::GenerateStreamResponse msg;
    msg.set_text(d.text);
    FillToken(*e->model().tokenizer, d.token, logprobs, msg.add_tokens());
    reactor->Send(msg);
  };
  hooks.on_end = [reactor, output](absl::StatusOr<GenerationResult> r) {
    if (!r.ok()) {
      output->SetStatus(ToGrpcStatus(r.status()));
      return;
    }
    v1::GenerateStreamResponse last;
    last.set_finish_reason(ToProto(r->finish_reason));
    last.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(r->prompt_tokens));
    last.mutable_usage()->set_completion_tokens(static_cast<int32_t>(r->tokens.size()));
    reactor->Send(last);
  };
  absl::Status submitted =
      SubmitStreamJob(serving_, e, req.model(), *std::move(request), ctx, output, reactor->start, std::move(hooks));
  if (!submitted.ok()) {
    output->SetStatus(ToGrpcStatus(submitted));
    output->RequestEnded(nullptr);
  }
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<v1::TokenizeRequest, v1::TokenizeResponse>(
      req, resp, serving_, "Tokenize", kProtoHint,
      [this, ctx](const v1::TokenizeRequest& r, v1::TokenizeResponse* out, UnaryReply* call) {
        RunTokenize(ctx, r, out, call);
      });
}

void GenerationService::RunTokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest& req,
                                    v1::TokenizeResponse* resp, UnaryReply* reactor) {
  const Clock::time_point t0 = Clock::now();
  absl::StatusOr<ModelHandle> model = serving_.FindModelFor(*ctx, req.model());
  const Tokenizer* tokenizer = model.ok() ? model->engine->model().tokenizer.get() : nullptr;
  absl::StatusOr<RenderedPrompt> text =
      !model.ok()            ? absl::StatusOr<RenderedPrompt>(model.status())
      : tokenizer == nullptr ? absl::FailedPreconditionError("the model has no tokenizer")
                             : PromptText(*tokenizer, req.prompt());
  if (!text.ok()) {
    FinishUnary(reactor, serving_, "Tokenize", t0, ToGrpcStatus(text.status()));
    return;
  }
  const Tokenizer& tok = *tokenizer;
  if (req.prompt().has_chat()) resp->set_rendered_prompt(text->text);
  for (int32_t id : text->Encode(tok, model->limits.parse_special_tokens_in_chat)) {
    v1::Token* t = resp->add_tokens();
    t->set_id(id);
    t->set_piece(tok.TokenBytes(id));
    t->set_special(tok.IsSpecial(id));
  }
  FinishUnary(reactor, serving_, "Tokenize", t0, grpc::Status::OK);
}

grpc::ServerUnaryReactor* GenerationService::ListModels(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return StartUnary<v1::ListModelsRequest, v1::ListModelsResponse>(
      req, resp, serving_, "ListModels", kProtoHint,
      [this, ctx](const v1::ListModelsRequest&, v1::ListModelsResponse* out, UnaryReply* call) {
        RunListModels(ctx, out, call);
      });
}

void GenerationService::RunListModels(grpc::CallbackServerContext* ctx, v1::ListModelsResponse* resp,
                                      UnaryReply* reactor) {
  const Clock::time_point t0 = Clock::now();
  if (absl::Status auth = serving_.Authorize(*ctx); !auth.ok()) {
    FinishUnary(reactor, serving_, "ListModels", t0, ToGrpcStatus(auth));
    return;
  }
  serving_.models().ForEach([resp](const ServedModel& m) {
    v1::ModelInfo* info = resp->add_models();
    info->set_name(m.name);
    info->set_state(m.state);
    info->set_state_message(m.state_message);
    if (m.engine == nullptr) return;
    const LoadedModel& lm = m.engine->model();
    const ModelConfig& c = lm.model->config();
    info->set_architecture(ArchitectureName(c.arch));
    info->set_context_length(static_cast<int32_t>(m.max_sequence_length));
    info->set_max_batch_size(static_cast<int32_t>(m.max_batch_size));
    info->set_execution_device(lm.execution_device);
    int64_t params = 0;
    for (const ModuleRecord& r : lm.modules) params += r.parameters;
    info->set_parameter_count(params);
    for (const ModuleRecord& g : GroupModules(lm.modules)) {
      v1::ModulePlacement* mp = info->add_modules();
      mp->set_modules(g.module);
      mp->set_placement(g.device);
      mp->set_precision(PrecisionName(g.precision));
      mp->set_parameter_count(g.parameters);
      mp->set_weight_bytes(g.bytes);
    }
  });
  FinishUnary(reactor, serving_, "ListModels", t0, grpc::Status::OK);
}

}  // namespace tierserve
