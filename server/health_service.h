// grpc.health.v1.Health, served by the daemon itself (not gRPC's built-in
// one) so that the API-key check covers it unless server.open_services lists
// health. Check answers the status now; Watch sends it, then every change.
// The statuses: "" (the whole server) and each registered service name.
#ifndef TIERSERVE_SERVER_HEALTH_SERVICE_H_
#define TIERSERVE_SERVER_HEALTH_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace tierserve {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  // `authorize` runs first on every call; a non-OK status ends the call with
  // it. Null: every call is answered.
  using Authorize = std::function<grpc::Status(const grpc::CallbackServerContext&)>;
  explicit HealthService(Authorize authorize = nullptr);
  ~HealthService() override;

  // Sets the status of `service` ("" for the server) and tells its watchers.
  void SetServing(const std::string& service, bool serving);
  // Ends every Watch (the server is shutting down): watchers get OK.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req) override;

  class Watcher;

 private:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  Status StatusOf(const std::string& service) const;  // mu_ held
  void Forget(Watcher* w);

  const Authorize authorize_;
  mutable std::mutex mu_;
  std::map<std::string, bool> serving_;
  std::set<Watcher*> watchers_;
  bool shut_down_ = false;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_HEALTH_SERVICE_H_
