// Who may talk to the daemon: TLS (and mutual TLS) on the gRPC port, API keys
// in call metadata, basic authentication on /metrics — what server.tls,
// server.api_keys_file, server.open_services and server.metrics_auth ask for,
// with their files read once at start-up.
#ifndef TIERSERVE_SERVER_SECURITY_H_
#define TIERSERVE_SERVER_SECURITY_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace tierserve {

// A set of API keys. Keys are kept as SHA-256 digests and a presented key is
// compared with every one of them in constant time, so neither the time of a
// refusal nor the memory of the process shows a key's bytes.
class ApiKeys {
 public:
  // One key per line; surrounding blank space is dropped, empty lines and
  // lines starting with '#' are skipped. A key is printable ASCII without
  // spaces (it travels in an HTTP/2 header). `context` starts every error.
  static absl::StatusOr<ApiKeys> Parse(absl::string_view text, absl::string_view context);

  // True when `key` is one of the set.
  bool Matches(absl::string_view key) const;
  // OK when the `authorization` metadata is "Bearer <a key of the set>";
  // UNAUTHENTICATED, saying what to send, otherwise.
  grpc::Status Check(const grpc::ServerContextBase& ctx) const;

  size_t size() const { return digests_.size(); }

 private:
  using Digest = std::array<uint8_t, 32>;
  static Digest Hash(absl::string_view key);
  std::vector<Digest> digests_;
};

// Constant-time equality of two strings of any length (the length shows).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

struct ServerSecurity {
  // TLS (mutual when a client CA is configured) or plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool tls = false;
  bool mutual_tls = false;
  // Null when no keys are configured.
  std::shared_ptr<const ApiKeys> api_keys;
  bool health_open = true;
  bool reflection_open = true;
  // /metrics: checks a user and password; null when /metrics is open.
  std::function<bool(const std::string&, const std::string&)> metrics_auth;

  // The check a keyed service runs first on each call: OK without keys.
  grpc::Status Authorize(const grpc::ServerContextBase& ctx) const;
};

// Reads the files the config names; errors name the key path and the file.
absl::StatusOr<ServerSecurity> LoadServerSecurity(const ServerConfig& config);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_SECURITY_H_
