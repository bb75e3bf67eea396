#include "server/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "civetweb.h"
#include "prometheus/text_serializer.h"

namespace tierserve {
namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A `metrics_listen` value taken apart. Only literal addresses: civetweb does
// not resolve names, and its own syntax ("8080s", "80,443") must not leak
// through as a configuration language.
struct ListenAddress {
  std::string host;  // without brackets
  int port = 0;
  bool ipv6 = false;
};

absl::Status BadAddress(std::string_view address, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "metrics_listen \"", AbslView(address), "\": ", AbslView(what),
      "; expected IPV4:PORT or [IPV6]:PORT with a literal address and a port in 0..65535, "
      "e.g. 0.0.0.0:9464"));
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  ListenAddress parsed;
  std::string_view port_text;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos) return BadAddress(address, "no closing ']'");
    if (close + 1 >= address.size() || address[close + 1] != ':') {
      return BadAddress(address, "no ':PORT' after the IPv6 address");
    }
    parsed.host = std::string(address.substr(1, close - 1));
    parsed.ipv6 = true;
    port_text = address.substr(close + 2);
    in6_addr probe{};
    if (inet_pton(AF_INET6, parsed.host.c_str(), &probe) != 1) {
      return BadAddress(address, "the host is not an IPv6 address");
    }
    if (!MetricsEndpointSupportsIpv6()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics_listen \"", AbslView(address),
          "\": IPv6 is not supported, the civetweb library serving /metrics was built without "
          "it; use an IPv4 address such as 0.0.0.0:9464 or 127.0.0.1:9464"));
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return BadAddress(address, "no ':PORT'");
    parsed.host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
    in_addr probe{};
    if (inet_pton(AF_INET, parsed.host.c_str(), &probe) != 1) {
      return BadAddress(address, "the host is not an IPv4 address (IPv6 goes in brackets)");
    }
  }
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, ec] = std::from_chars(port_text.data(), end, parsed.port);
  if (port_text.empty() || ec != std::errc() || ptr != end || parsed.port < 0 ||
      parsed.port > 65535) {
    return BadAddress(address, "the port is not a number in 0..65535");
  }
  return parsed;
}

// civetweb reports a failed bind only as "null context"; binding the same
// address here recovers the reason (errno) for the error message.
std::string DiagnoseBindFailure(const ListenAddress& a) {
  const int fd = ::socket(a.ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::StrCat("cannot create a socket: ", std::strerror(errno));
  const int one = 1;
  // civetweb sets SO_REUSEADDR too, so a port in TIME_WAIT is not "in use".
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc;
  if (a.ipv6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(a.port));
    inet_pton(AF_INET6, a.host.c_str(), &sa.sin6_addr);
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(a.port));
    inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  }
  const int err = errno;
  ::close(fd);
  if (rc == 0) return "the HTTP server could not start (the address itself can be bound)";
  switch (err) {
    case EADDRINUSE:
      return absl::StrCat("port ", a.port, " is already in use (another process listens there)");
    case EACCES:
      return absl::StrCat("permission denied to bind port ", a.port,
                          " (ports below 1024 need privileges)");
    case EADDRNOTAVAIL:
      return absl::StrCat(a.host, " is not an address of this machine");
    default:
      return absl::StrCat("cannot bind: ", std::strerror(err));
  }
}

double NonNegative(double seconds) { return std::max(0.0, seconds); }  // NaN -> 0 too

}  // namespace

const std::vector<double> kRequestDurationBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1,    2.5,   5,    10,  25,
                                                     50,    100,  250,   600};
const std::vector<double> kTimeToFirstTokenBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   5,
                                                      10,    20,     40,    60};

bool MetricsEndpointSupportsIpv6() {
  constexpr unsigned kCivetwebFeatureIpv6 = 8;  // civetweb.h, mg_check_feature()
  return mg_check_feature(kCivetwebFeatureIpv6) != 0;
}

const char* RpcMethodName(RpcMethod method) {
  switch (method) {
    case RpcMethod::kGenerate:
      return "Generate";
    case RpcMethod::kGenerateStream:
      return "GenerateStream";
    case RpcMethod::kTokenize:
      return "Tokenize";
    case RpcMethod::kListModels:
      return "ListModels";
  }
  return "Unknown";
}

std::string StatusCodeLabel(absl::StatusCode code) {
  const int value = static_cast<int>(code);
  // 0 (OK) .. 16 (UNAUTHENTICATED) are the codes gRPC defines.
  if (value < 0 || value > 16) return "UNKNOWN";
  return absl::StatusCodeToString(code);
}

// --- ModelMetrics -----------------------------------------------------------

void ModelMetrics::RecordTimeToFirstToken(double seconds) { ttft_.Observe(NonNegative(seconds)); }

void ModelMetrics::AddPromptTokens(int64_t n) {
  if (n > 0) prompt_tokens_.Increment(static_cast<double>(n));
}

void ModelMetrics::AddGeneratedTokens(int64_t n) {
  if (n > 0) generated_tokens_.Increment(static_cast<double>(n));
}

void ModelMetrics::SetRequestsRunning(int64_t n) { running_.Set(static_cast<double>(n)); }
void ModelMetrics::AddRequestsRunning(int64_t delta) { running_.Increment(static_cast<double>(delta)); }
void ModelMetrics::SetRequestsWaiting(int64_t n) { waiting_.Set(static_cast<double>(n)); }
void ModelMetrics::AddRequestsWaiting(int64_t delta) { waiting_.Increment(static_cast<double>(delta)); }

void ModelMetrics::SetWeightBytes(std::string_view device, int64_t bytes) {
  // Family::Add returns the existing series for known labels; it locks.
  weight_bytes_.Add({{"model", name_}, {"device", std::string(device)}})
      .Set(static_cast<double>(bytes));
}

// --- ServerMetrics ----------------------------------------------------------

ServerMetrics::ServerMetrics(Options options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      process_memory_(std::make_shared<ProcessMemoryCollector>(options_.statm_path)),
      requests_(prometheus::BuildCounter()
                    .Name("tierserve_requests_total")
                    .Help("Finished gRPC requests of tierserve.v1.Generation, by method and "
                          "gRPC status code.")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("tierserve_request_duration_seconds")
                            .Help("End-to-end duration of gRPC requests, from arrival to the "
                                  "last message sent.")
                            .Register(*registry_)),
      time_to_first_token_(prometheus::BuildHistogram()
                               .Name("tierserve_time_to_first_token_seconds")
                               .Help("Time from a generation request's arrival to its first "
                                     "generated token.")
                               .Register(*registry_)),
      prompt_tokens_(prometheus::BuildCounter()
                         .Name("tierserve_prompt_tokens_total")
                         .Help("Prompt tokens processed (prefill), after the chat template.")
                         .Register(*registry_)),
      generated_tokens_(prometheus::BuildCounter()
                            .Name("tierserve_generated_tokens_total")
                            .Help("Tokens generated (decode).")
                            .Register(*registry_)),
      requests_running_(prometheus::BuildGauge()
                            .Name("tierserve_requests_running")
                            .Help("Requests being decoded.")
                            .Register(*registry_)),
      requests_waiting_(prometheus::BuildGauge()
                            .Name("tierserve_requests_waiting")
                            .Help("Requests queued, waiting for a place in the batch.")
                            .Register(*registry_)),
      model_weight_bytes_(prometheus::BuildGauge()
                              .Name("tierserve_model_weight_bytes")
                              .Help("Bytes of a model's weights resting on each device "
                                    "(cuda:N, cpu, disk), in their stored precision.")
                              .Register(*registry_)) {
  // Every method's series exist from the start, so rate() has a zero to
  // begin from; other codes appear with their first occurrence.
  for (RpcMethod method : kAllRpcMethods) {
    requests_.Add({{"method", RpcMethodName(method)}, {"code", "OK"}});
    duration_by_method_[static_cast<size_t>(method)] =
        &request_duration_.Add({{"method", RpcMethodName(method)}}, kRequestDurationBuckets);
  }
}

ServerMetrics::~ServerMetrics() {
  absl::MutexLock lock(&mu_);
  exposer_.reset();
}

absl::Status ServerMetrics::StartExposer(std::string_view address) {
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();
  absl::MutexLock lock(&mu_);
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics_listen \"", AbslView(address),
                     "\": the metrics endpoint is already serving on port ",
                     exposer_->GetListeningPorts().front()));
  }
  const std::string civet_address =
      parsed->ipv6 ? absl::StrCat("[", parsed->host, "]:", parsed->port)
                   : absl::StrCat(parsed->host, ":", parsed->port);
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", civet_address,
        "num_threads", absl::StrCat(std::max(1, options_.exposer_threads)),
        "request_timeout_ms", absl::StrCat(std::max(1, options_.exposer_request_timeout_ms))});
    exposer->RegisterCollectable(registry_);
    exposer->RegisterCollectable(process_memory_);
    exposer_ = std::move(exposer);
  } catch (const std::exception&) {
    return absl::UnavailableError(absl::StrCat("metrics_listen \"", AbslView(address),
                                               "\": cannot serve /metrics: ",
                                               DiagnoseBindFailure(*parsed)));
  }
  return absl::OkStatus();
}

int ServerMetrics::listening_port() const {
  absl::MutexLock lock(&mu_);
  if (exposer_ == nullptr) return 0;
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

ModelMetrics& ServerMetrics::AddModel(std::string_view name) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<ModelMetrics>& slot = models_[AbslView(name)];
  if (slot == nullptr) {
    const prometheus::Labels labels = {{"model", std::string(name)}};
    slot.reset(new ModelMetrics(std::string(name),
                                time_to_first_token_.Add(labels, kTimeToFirstTokenBuckets),
                                prompt_tokens_.Add(labels), generated_tokens_.Add(labels),
                                requests_running_.Add(labels), requests_waiting_.Add(labels),
                                model_weight_bytes_));
  }
  return *slot;
}

void ServerMetrics::RecordRequest(RpcMethod method, absl::StatusCode code, double seconds) {
  const size_t index = static_cast<size_t>(method);
  if (index >= duration_by_method_.size()) return;  // not a RpcMethod value
  const std::string method_name = RpcMethodName(method);
  requests_.Add({{"method", method_name}, {"code", StatusCodeLabel(code)}}).Increment();
  duration_by_method_[index]->Observe(NonNegative(seconds));
}

std::string ServerMetrics::ExpositionText() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_memory_->Collect()) {
    families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace tierserve
