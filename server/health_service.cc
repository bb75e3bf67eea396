#include "server/health_service.h"

#include <optional>
#include <utility>

namespace tierserve {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: writes the status it was started with, then each change.
// While a write is in flight, only the newest status waits behind it.
class HealthService::Watcher final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, std::string name) : service_(service), name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  // Sends `status` unless it is the one last sent or queued.
  void Update(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    if (writing_) {
      pending_ = status;
      return;
    }
    if (sent_ && status == last_) return;
    Write(status);
  }

  void End(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (finished_) return;
    if (!ok) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (pending_.has_value()) {
      const Status next = *pending_;
      pending_.reset();
      if (next != last_) Write(next);
    }
  }

  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    service_->Forget(this);
    delete this;
  }

 private:
  void Write(Status status) {  // mu_ held
    last_ = status;
    sent_ = true;
    writing_ = true;
    response_.set_status(status);
    StartWrite(&response_);
  }

  HealthService* const service_;
  const std::string name_;
  std::mutex mu_;
  HealthCheckResponse response_;
  Status last_ = HealthCheckResponse::UNKNOWN;
  std::optional<Status> pending_;
  bool sent_ = false;
  bool writing_ = false;
  bool finished_ = false;
};

HealthService::HealthService(Authorize authorize) : authorize_(std::move(authorize)) {
  serving_[""] = false;
}

HealthService::~HealthService() = default;

HealthService::Status HealthService::StatusOf(const std::string& service) const {
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(const std::string& service, bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  serving_[service] = serving;
  const Status status = StatusOf(service);
  for (Watcher* w : watchers_)
    if (w->name() == service) w->Update(status);
}

void HealthService::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
  for (Watcher* w : watchers_) w->End(grpc::Status::OK);
}

void HealthService::Forget(Watcher* w) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(w);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* ctx,
                                               const HealthCheckRequest* req,
                                               HealthCheckResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (authorize_) {
    if (grpc::Status s = authorize_(*ctx); !s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
  }
  Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status = StatusOf(req->service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
    return reactor;
  }
  resp->set_status(status);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(grpc::CallbackServerContext* ctx,
                                                                    const HealthCheckRequest* req) {
  auto* watcher = new Watcher(this, req->service());
  if (authorize_) {
    if (grpc::Status s = authorize_(*ctx); !s.ok()) {
      watcher->End(s);  // OnDone runs Forget, which finds nothing to erase
      return watcher;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) {
    watcher->End(grpc::Status::OK);
    return watcher;
  }
  watchers_.insert(watcher);
  watcher->Update(StatusOf(req->service()));
  return watcher;
}

}  // namespace tierserve
