#include "server/generation_service.h"

#include <chrono>
#include <deque>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/config_error.h"
#include "runtime/placement/module_report.h"
#include "runtime/base/status_macros.h"
#include "runtime/generate/chat_prompt.h"
#include "runtime/generate/stop_matcher.h"
#include "server/request_validation.h"

namespace tierserve {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Validates a request once, at the edge, into what the engine runs.
absl::StatusOr<GenerationRequest> BuildRequest(const Engine& engine, const PromptLimits& limits,
                                               const v1::Prompt& prompt,
                                               const v1::GenerationParameters& p) {
  const Tokenizer* tok = engine.model().tokenizer.get();
  if (tok == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("model ", engine.name(), " has no tokenizer"));
  }
  return BuildGenerationRequest(*tok, limits, prompt, p);
}

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

}  // namespace

// A unary call: the reactor, which owns the parsed request and the response
// until gRPC is done with the call.
class UnaryReply : public grpc::ServerUnaryReactor {
 public:
  // Serializes the response when `status` is OK, and ends the call.
  virtual void Reply(const grpc::Status& status) = 0;
  void OnDone() override { delete this; }
};

namespace {

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
  Request request;
  Response response;

 private:
  grpc::ByteBuffer* out_;  // gRPC's, alive until the call is done
};

// Parses a request's bytes into `msg`: INVALID_ARGUMENT when they are not
// that message.
template <typename Message>
grpc::Status ParseRequest(const grpc::ByteBuffer& bytes, Message* msg) {
  grpc::ByteBuffer copy(bytes);  // deserializing consumes the buffer; a copy shares the slices
  if (grpc::SerializationTraits<Message>::Deserialize(&copy, msg).ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("the request is not a valid ", Message::descriptor()->full_name(),
                                   ": its bytes do not parse as that protobuf message, or a string "
                                   "field is not UTF-8 (use the tierserve.v1 protos)"));
}

// Finishes a unary call and reports it.
void FinishUnary(UnaryReply* call, const ServiceObserver& obs, const char* method, Clock::time_point t0,
                 const grpc::Status& status) {
  if (obs.on_request) obs.on_request(method, status.error_code(), SecondsSince(t0));
  call->Reply(status);
}

// Parses a unary call's request, then runs `run(request, response, call)`.
template <typename Request, typename Response, typename Run>
grpc::ServerUnaryReactor* StartUnary(const grpc::ByteBuffer* in, grpc::ByteBuffer* out, const ServiceObserver& obs,
                                     const char* method, Run run) {
  auto* call = new UnaryCall<Request, Response>(out);
  if (grpc::Status parsed = ParseRequest(*in, &call->request); !parsed.ok()) {
    FinishUnary(call, obs, method, Clock::now(), parsed);
    return call;
  }
  run(call->request, &call->response, call);
  return call;
}

// State shared by a unary Generate call and its jobs (one per prompt).
struct UnaryGenerate {
  std::mutex mu;
  std::vector<absl::StatusOr<GenerationResult>> results;  // guarded by mu
  int remaining = 0;                                       // guarded by mu
  absl::Status error;                                      // first error; guarded by mu
  std::atomic<bool> cancel{false};
};

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

}  // namespace

GenerationService::GenerationService(ServiceObserver observer) : observer_(std::move(observer)) {
  // Every call ends through on_request; count calls in and out around it.
  auto inner = std::move(observer_.on_request);
  observer_.on_request = [this, inner](const std::string& method, grpc::StatusCode code, double s) {
    if (inner) inner(method, code, s);
    active_calls_.fetch_sub(1);
  };
}
GenerationService::~GenerationService() = default;

void GenerationService::AddLoading(const std::string& name, int64_t max_sequence_length,
                                   int64_t max_batch_size, bool parse_special_tokens_in_chat) {
  std::lock_guard<std::mutex> lock(mu_);
  ServedModel& m = models_[name];
  m.name = name;
  m.max_sequence_length = max_sequence_length;
  m.parse_special_tokens_in_chat = parse_special_tokens_in_chat;
  m.max_batch_size = max_batch_size;
}

void GenerationService::SetReady(const std::string& name, std::unique_ptr<Engine> engine) {
  std::lock_guard<std::mutex> lock(mu_);
  ServedModel& m = models_[name];
  const int64_t context = engine->model().model->config().max_position_embeddings;
  if (m.max_sequence_length <= 0 || m.max_sequence_length > context) m.max_sequence_length = context;
  m.engine = std::move(engine);
  m.state = v1::MODEL_STATE_READY;
}

void GenerationService::SetFailed(const std::string& name, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  models_[name].state = v1::MODEL_STATE_FAILED;
  models_[name].state_message = reason;
}

void GenerationService::AbortAll() { aborting_ = true; }

absl::Status GenerationService::CancelledStatus(const grpc::CallbackServerContext* ctx) const {
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

void GenerationService::Drain() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, m] : models_)
    if (m.engine) m.engine->Shutdown();
}

absl::Status GenerationService::Authorize(const grpc::ServerContextBase& ctx) const {
  if (!authorize_) return absl::OkStatus();
  const grpc::Status s = authorize_(ctx);
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

absl::StatusOr<Engine*> GenerationService::FindEngineFor(const grpc::ServerContextBase& ctx,
                                                        const std::string& name,
                                                        PromptLimits* limits) const {
  TS_RETURN_IF_ERROR(Authorize(ctx));
  return FindEngine(name, limits);
}

absl::StatusOr<Engine*> GenerationService::FindEngine(const std::string& name, PromptLimits* limits) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, m] : models_) names.push_back(n);
    return absl::NotFoundError(absl::StrCat("unknown model ", QuoteForMessage(name), "; served models: ",
                                            names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  const ServedModel& m = it->second;
  if (m.state == v1::MODEL_STATE_LOADING) {
    return absl::UnavailableError(absl::StrCat("model ", name, " is still loading; retry shortly"));
  }
  if (m.engine == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("model ", name, " failed to load: ", m.state_message));
  }
  if (m.state == v1::MODEL_STATE_FAILED) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", name, " stopped serving: ", m.state_message));
  }
  limits->max_sequence_length = m.max_sequence_length;
  limits->parse_special_tokens_in_chat = m.parse_special_tokens_in_chat;
  return m.engine.get();
}

int64_t GenerationService::MaxBatchSize(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  return it == models_.end() ? 1 : it->second.max_batch_size;
}

grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  active_calls_.fetch_add(1);
  return StartUnary<v1::GenerateRequest, v1::GenerateResponse>(
      req, resp, observer_, "Generate",
      [this, ctx](const v1::GenerateRequest& r, v1::GenerateResponse* out, UnaryReply* call) {
        RunGenerate(ctx, r, out, call);
      });
}

void GenerationService::RunGenerate(grpc::CallbackServerContext* ctx, const v1::GenerateRequest& request,
                                    v1::GenerateResponse* resp, UnaryReply* reactor) {
  const v1::GenerateRequest* req = &request;
  const Clock::time_point t0 = Clock::now();
  PromptLimits limits;
  absl::StatusOr<Engine*> engine = FindEngineFor(*ctx, req->model(), &limits);
  if (!engine.ok()) {
    FinishUnary(reactor, observer_, "Generate", t0, ToGrpcStatus(engine.status()));
    return;
  }
  if (req->prompts().empty()) {
    FinishUnary(reactor, observer_, "Generate", t0,
                grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no prompts; send at least one"));
    return;
  }
  if (const int64_t limit = MaxBatchSize(req->model()); req->prompts_size() > limit) {
    FinishUnary(reactor, observer_, "Generate", t0,
                grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             absl::StrCat(req->prompts_size(), " prompts; at most ", limit,
                                          " per call (the model's max_batch_size)")));
    return;
  }
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < req->prompts_size(); ++i) {
    absl::StatusOr<GenerationRequest> r = BuildRequest(**engine, limits, req->prompts(i), req->parameters());
    if (!r.ok()) {
      const absl::Status s(r.status().code(), absl::StrCat("prompts[", i, "]: ", r.status().message()));
      FinishUnary(reactor, observer_, "Generate", t0, ToGrpcStatus(s));
      return;
    }
    requests.push_back(std::move(*r));
  }

  auto state = std::make_shared<UnaryGenerate>();
  state->results.resize(requests.size(), absl::UnknownError("not run"));
  state->remaining = static_cast<int>(requests.size());
  const bool logprobs = WantsLogprobs(req->parameters());
  const std::string model = req->model();
  Engine* e = *engine;
  // Runs once the last job is done (or was never submitted).
  auto complete = [this, state, reactor, resp, t0, e, logprobs]() {
    absl::Status error;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      error = state->error;
    }
    if (error.ok()) {
      for (auto& r : state->results) {
        if (!r.ok()) {
          error = r.status();
          break;
        }
        v1::Completion* c = resp->add_completions();
        c->set_text(r->text);
        for (const SampledToken& t : r->tokens) FillToken(*e->model().tokenizer, t, logprobs, c->add_tokens());
        c->set_finish_reason(ToProto(r->finish_reason));
        c->mutable_usage()->set_prompt_tokens(static_cast<int32_t>(r->prompt_tokens));
        c->mutable_usage()->set_completion_tokens(static_cast<int32_t>(r->tokens.size()));
      }
    }
    FinishUnary(reactor, observer_, "Generate", t0, ToGrpcStatus(error));
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
    auto first = std::make_shared<bool>(true);
    const int64_t prompt_tokens = static_cast<int64_t>(job->request.prompt.size());
    job->cancelled = [this, state, ctx] { return state->cancel.load() || aborting_ || ctx->IsCancelled(); };
    job->on_delta = [this, first, t0, model](const GenerationDelta&) {
      if (*first && observer_.on_first_token) observer_.on_first_token(model, SecondsSince(t0));
      *first = false;
      return true;
    };
    job->on_done = [this, state, i, finish_one, model, prompt_tokens, ctx](absl::StatusOr<GenerationResult> r) {
      if (r.ok() && observer_.on_sequence) {
        observer_.on_sequence(model, prompt_tokens, static_cast<int64_t>(r->tokens.size()));
      }
      if (r.ok() && r->finish_reason == FinishReason::kCancelled) r = CancelledStatus(ctx);
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->results[i] = std::move(r);
      }
      finish_one();
    };
    TrackJob(observer_, model, job.get());
    absl::Status submitted = e->Submit(job);
    if (!submitted.ok()) {
      if (observer_.on_job) observer_.on_job(model, -1, 0);
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

namespace {

// A GenerateStream call: messages produced on the engine thread are written
// one at a time; the final status follows the last write.
class StreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Shared with the engine job, so it outlives whichever side ends last.
  struct State {
    std::mutex mu;
    std::deque<grpc::ByteBuffer> pending;  // serialized messages; front is being written
    size_t pending_bytes = 0;              // size of `pending`
    std::function<void()> wake;                      // the engine's Wake, once submitted
    // Output the client may leave unread. Past it the request's sequence
    // pauses (keeping its place in the batch and its KV blocks) until the
    // client reads: a slow reader costs bounded memory and never slows the
    // other requests.
    size_t max_unread = 256 << 10;
    bool writing = false;
    bool complete = false;
    grpc::Status final_status;
    StreamReactor* reactor = nullptr;  // null once the call is over
    std::atomic<bool> cancelled{false};
    // Generation ended with output still queued: counted by the engine
    // (Engine::AddUndelivered) until the output is written or dropped.
    std::function<void(int)> count_undelivered;
    bool counted_undelivered = false;
  };

  StreamReactor(const ServiceObserver& observer) : observer_(observer), state_(std::make_shared<State>()) {
    state_->reactor = this;
  }
  std::shared_ptr<State> state() { return state_; }

  // Engine thread: queue a message.
  static void Send(const std::shared_ptr<State>& s, const v1::GenerateStreamResponse& msg) {
    grpc::ByteBuffer bytes;
    bool own_buffer = false;
    if (grpc::Status serialized = grpc::SerializationTraits<v1::GenerateStreamResponse>::Serialize(
            msg, &bytes, &own_buffer);
        !serialized.ok()) {
      Complete(s, serialized);
      return;
    }
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->reactor == nullptr || s->complete) return;
    s->pending_bytes += bytes.Length();
    s->pending.push_back(std::move(bytes));
    if (!s->writing) {
      s->writing = true;
      s->reactor->StartWrite(&s->pending.front());
    }
  }
  // Any thread: end the call once queued messages are written.
  static void Complete(const std::shared_ptr<State>& s, const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->reactor == nullptr || s->complete) return;
    s->complete = true;
    s->final_status = status;
    if (!s->writing) {
      s->reactor->FinishAndReport();
    } else if (s->count_undelivered) {
      s->counted_undelivered = true;
      s->count_undelivered(1);
    }
  }

  // Engine thread: whether the client has read enough of what was sent for
  // the sequence to go on (see State::max_unread).
  static bool Ready(const std::shared_ptr<State>& s) {
    std::lock_guard<std::mutex> lock(s->mu);
    return s->pending_bytes < s->max_unread;
  }

  void OnWriteDone(bool ok) override {
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      const bool was_full = state_->pending_bytes >= state_->max_unread;
      state_->pending_bytes -= state_->pending.front().Length();
      state_->pending.pop_front();
      if (!ok) {
        // The client is gone: drop the rest; the job sees `cancelled`.
        state_->cancelled = true;
        state_->pending.clear();
        state_->pending_bytes = 0;
      }
      if (was_full && state_->pending_bytes < state_->max_unread) wake = state_->wake;
      WriteNextOrFinish();
    }
    if (wake) wake();
  }
  void OnCancel() override {
    state_->cancelled = true;
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      wake = state_->wake;
    }
    if (wake) wake();  // a paused sequence ends now, not at its next poll
  }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->reactor = nullptr;
      Delivered();
    }
    delete this;
  }

  Clock::time_point start = Clock::now();

 private:
  // REQUIRES: state_->mu held.
  void WriteNextOrFinish() {
    if (!state_->pending.empty()) {
      StartWrite(&state_->pending.front());
      return;
    }
    state_->writing = false;
    if (state_->complete) FinishAndReport();
  }
  // The output is written or dropped: no longer counted. REQUIRES: state_->mu held.
  void Delivered() {
    if (!state_->counted_undelivered) return;
    state_->counted_undelivered = false;
    state_->count_undelivered(-1);
  }
  // REQUIRES: state_->mu held.
  void FinishAndReport() {
    Delivered();
    if (observer_.on_request) observer_.on_request("GenerateStream", state_->final_status.error_code(), SecondsSince(start));
    Finish(state_->final_status);
  }
  const ServiceObserver& observer_;
  std::shared_ptr<State> state_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* GenerationService::GenerateStream(grpc::CallbackServerContext* ctx,
                                                                              const grpc::ByteBuffer* bytes) {
  active_calls_.fetch_add(1);
  auto* reactor = new StreamReactor(observer_);
  std::shared_ptr<StreamReactor::State> state = reactor->state();
  v1::GenerateStreamRequest request_message;
  if (grpc::Status parsed = ParseRequest(*bytes, &request_message); !parsed.ok()) {
    StreamReactor::Complete(state, parsed);
    return reactor;
  }
  const v1::GenerateStreamRequest* req = &request_message;
  PromptLimits limits;
  absl::StatusOr<Engine*> engine = FindEngineFor(*ctx, req->model(), &limits);
  absl::StatusOr<GenerationRequest> request =
      engine.ok() ? BuildRequest(**engine, limits, req->prompt(), req->parameters()) : engine.status();
  if (!request.ok()) {
    StreamReactor::Complete(state, ToGrpcStatus(request.status()));
    return reactor;
  }
  Engine* e = *engine;
  const bool logprobs = WantsLogprobs(req->parameters());
  const std::string model = req->model();
  const Clock::time_point t0 = reactor->start;
  auto job = std::make_shared<GenerationJob>();
  job->request = std::move(*request);
  const int64_t prompt_tokens = static_cast<int64_t>(job->request.prompt.size());
  auto first = std::make_shared<bool>(true);
  job->cancelled = [this, state, ctx] { return state->cancelled.load() || aborting_ || ctx->IsCancelled(); };
  job->ready = [state] { return StreamReactor::Ready(state); };
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->wake = [e] { e->Wake(); };
    state->count_undelivered = [e](int delta) { e->AddUndelivered(delta); };
    state->max_unread = max_unread_stream_bytes_;
  }
  job->on_delta = [this, state, e, logprobs, first, t0, model](const GenerationDelta& d) {
    if (*first && observer_.on_first_token) observer_.on_first_token(model, SecondsSince(t0));
    *first = false;
    v1::GenerateStreamResponse msg;
    msg.set_text(d.text);
    FillToken(*e->model().tokenizer, d.token, logprobs, msg.add_tokens());
    StreamReactor::Send(state, msg);
    return true;
  };
  job->on_done = [this, state, model, prompt_tokens, ctx](absl::StatusOr<GenerationResult> r) {
    if (!r.ok()) {
      StreamReactor::Complete(state, ToGrpcStatus(r.status()));
      return;
    }
    if (observer_.on_sequence) observer_.on_sequence(model, prompt_tokens, static_cast<int64_t>(r->tokens.size()));
    if (r->finish_reason == FinishReason::kCancelled) {
      StreamReactor::Complete(state, ToGrpcStatus(CancelledStatus(ctx)));
      return;
    }
    v1::GenerateStreamResponse last;
    last.set_finish_reason(ToProto(r->finish_reason));
    last.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(r->prompt_tokens));
    last.mutable_usage()->set_completion_tokens(static_cast<int32_t>(r->tokens.size()));
    StreamReactor::Send(state, last);
    StreamReactor::Complete(state, grpc::Status::OK);
  };
  TrackJob(observer_, model, job.get());
  absl::Status submitted = e->Submit(job);
  if (!submitted.ok()) {
    if (observer_.on_job) observer_.on_job(model, -1, 0);
    StreamReactor::Complete(state, ToGrpcStatus(submitted));
  }
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  active_calls_.fetch_add(1);
  return StartUnary<v1::TokenizeRequest, v1::TokenizeResponse>(
      req, resp, observer_, "Tokenize",
      [this, ctx](const v1::TokenizeRequest& r, v1::TokenizeResponse* out, UnaryReply* call) {
        RunTokenize(ctx, r, out, call);
      });
}

void GenerationService::RunTokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest& request,
                                    v1::TokenizeResponse* resp, UnaryReply* reactor) {
  const v1::TokenizeRequest* req = &request;
  const Clock::time_point t0 = Clock::now();
  PromptLimits limits;
  absl::StatusOr<Engine*> engine = FindEngineFor(*ctx, req->model(), &limits);
  const Tokenizer* tokenizer = engine.ok() ? (*engine)->model().tokenizer.get() : nullptr;
  absl::StatusOr<RenderedPrompt> text =
      !engine.ok()          ? absl::StatusOr<RenderedPrompt>(engine.status())
      : tokenizer == nullptr ? absl::FailedPreconditionError("the model has no tokenizer")
                             : PromptText(*tokenizer, req->prompt());
  if (!text.ok()) {
    FinishUnary(reactor, observer_, "Tokenize", t0, ToGrpcStatus(text.status()));
    return;
  }
  const Tokenizer& tok = *tokenizer;
  if (req->prompt().has_chat()) resp->set_rendered_prompt(text->text);
  for (int32_t id : text->Encode(tok, limits.parse_special_tokens_in_chat)) {
    v1::Token* t = resp->add_tokens();
    t->set_id(id);
    t->set_piece(tok.TokenBytes(id));
    t->set_special(tok.IsSpecial(id));
  }
  FinishUnary(reactor, observer_, "Tokenize", t0, grpc::Status::OK);
}

grpc::ServerUnaryReactor* GenerationService::ListModels(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  active_calls_.fetch_add(1);
  return StartUnary<v1::ListModelsRequest, v1::ListModelsResponse>(
      req, resp, observer_, "ListModels",
      [this, ctx](const v1::ListModelsRequest&, v1::ListModelsResponse* out, UnaryReply* call) {
        RunListModels(ctx, out, call);
      });
}

void GenerationService::RunListModels(grpc::CallbackServerContext* ctx, v1::ListModelsResponse* resp,
                                      UnaryReply* reactor) {
  const Clock::time_point t0 = Clock::now();
  if (absl::Status auth = Authorize(*ctx); !auth.ok()) {
    FinishUnary(reactor, observer_, "ListModels", t0, ToGrpcStatus(auth));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, m] : models_) {
      v1::ModelInfo* info = resp->add_models();
      info->set_name(name);
      info->set_state(m.state);
      info->set_state_message(m.state_message);
      if (m.engine == nullptr) continue;
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
    }
  }
  FinishUnary(reactor, observer_, "ListModels", t0, grpc::Status::OK);
}

}  // namespace tierserve
