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

const std::vector<double> kQueueTimeBuckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                               2.5,   5,     10,   25,    50,   100, 250,  600};
const std::vector<double> kInterTokenLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025,
                                                       0.03,  0.04,   0.05,  0.075, 0.1,  0.15, 0.2,
                                                       0.3,   0.4,    0.5,   0.75,  1,    2.5};
const std::vector<double> kBatchSizeBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const std::vector<double> kStepTokensBuckets = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};

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
    case RpcMethod::kServerLive:
      return "ServerLive";
    case RpcMethod::kServerReady:
      return "ServerReady";
    case RpcMethod::kModelReady:
      return "ModelReady";
    case RpcMethod::kServerMetadata:
      return "ServerMetadata";
    case RpcMethod::kModelMetadata:
      return "ModelMetadata";
    case RpcMethod::kModelConfig:
      return "ModelConfig";
    case RpcMethod::kModelStatistics:
      return "ModelStatistics";
    case RpcMethod::kModelInfer:
      return "ModelInfer";
    case RpcMethod::kModelStreamInfer:
      return "ModelStreamInfer";
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

ModelMetrics::ModelMetrics(std::string name, const ModelFamilies& f)
    : name_(std::move(name)),
      weight_bytes_(f.weight_bytes),
      ttft_(f.ttft.Add({{"model", name_}}, kTimeToFirstTokenBuckets)),
      prompt_tokens_(f.prompt_tokens.Add({{"model", name_}})),
      generated_tokens_(f.generated_tokens.Add({{"model", name_}})),
      running_(f.running.Add({{"model", name_}})),
      waiting_(f.waiting.Add({{"model", name_}})),
      queue_time_(f.queue_time.Add({{"model", name_}}, kQueueTimeBuckets)),
      prefill_time_(f.prefill_time.Add({{"model", name_}}, kTimeToFirstTokenBuckets)),
      inter_token_(f.inter_token.Add({{"model", name_}}, kInterTokenLatencyBuckets)),
      batch_size_(f.batch_size.Add({{"model", name_}}, kBatchSizeBuckets)),
      step_tokens_(f.step_tokens.Add({{"model", name_}}, kStepTokensBuckets)),
      kv_used_(f.kv_used.Add({{"model", name_}})),
      kv_cached_(f.kv_cached.Add({{"model", name_}})),
      kv_total_(f.kv_total.Add({{"model", name_}})),
      kv_usage_(f.kv_usage.Add({{"model", name_}})),
      prefix_queries_(f.prefix_queries.Add({{"model", name_}})),
      prefix_hits_(f.prefix_hits.Add({{"model", name_}})),
      preemptions_(f.preemptions.Add({{"model", name_}})),
      paused_(f.paused.Add({{"model", name_}})) {}

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

void ModelMetrics::RecordQueueTime(double seconds) { queue_time_.Observe(NonNegative(seconds)); }
void ModelMetrics::RecordPrefillTime(double seconds) { prefill_time_.Observe(NonNegative(seconds)); }
void ModelMetrics::RecordInterTokenLatency(double seconds) { inter_token_.Observe(NonNegative(seconds)); }

void ModelMetrics::RecordStep(int64_t sequences, int64_t tokens) {
  batch_size_.Observe(static_cast<double>(sequences));
  step_tokens_.Observe(static_cast<double>(tokens));
}

void ModelMetrics::SetKvCacheBlocks(int64_t used, int64_t cached, int64_t total) {
  kv_used_.Set(static_cast<double>(used));
  kv_cached_.Set(static_cast<double>(cached));
  kv_total_.Set(static_cast<double>(total));
  kv_usage_.Set(total > 0 ? static_cast<double>(used) / static_cast<double>(total) : 0.0);
}

void ModelMetrics::AddPrefixCache(int64_t queried_tokens, int64_t hit_tokens) {
  if (queried_tokens > 0) prefix_queries_.Increment(static_cast<double>(queried_tokens));
  if (hit_tokens > 0) prefix_hits_.Increment(static_cast<double>(hit_tokens));
}

void ModelMetrics::AddPreemptions(int64_t n) {
  if (n > 0) preemptions_.Increment(static_cast<double>(n));
}

void ModelMetrics::SetRequestsPaused(int64_t n) { paused_.Set(static_cast<double>(n)); }

// --- ServerMetrics ----------------------------------------------------------

namespace {
template <typename Builder>
auto& Register(Builder builder, const char* name, const char* help, prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}
}  // namespace

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
      model_families_{
          Register(prometheus::BuildHistogram(), "tierserve_time_to_first_token_seconds",
                   "Time from a generation request's arrival to its first generated token.", *registry_),
          Register(prometheus::BuildCounter(), "tierserve_prompt_tokens_total",
                   "Prompt tokens processed (prefill), after the chat template.", *registry_),
          Register(prometheus::BuildCounter(), "tierserve_generated_tokens_total", "Tokens generated (decode).",
                   *registry_),
          Register(prometheus::BuildGauge(), "tierserve_requests_running", "Requests in the running batch.",
                   *registry_),
          Register(prometheus::BuildGauge(), "tierserve_requests_waiting",
                   "Requests queued, waiting for a place in the batch.", *registry_),
          Register(prometheus::BuildGauge(), "tierserve_model_weight_bytes",
                   "Bytes of a model's weights resting on each device (cuda:N, sim:N, cpu, disk), in their "
                   "stored precision.",
                   *registry_),
          Register(prometheus::BuildHistogram(), "tierserve_request_queue_time_seconds",
                   "Time a request waited in the queue before it first ran.", *registry_),
          Register(prometheus::BuildHistogram(), "tierserve_request_prefill_time_seconds",
                   "Time from a request's first run in the batch to its first token.", *registry_),
          Register(prometheus::BuildHistogram(), "tierserve_inter_token_latency_seconds",
                   "Time between two consecutive tokens of one request.", *registry_),
          Register(prometheus::BuildHistogram(), "tierserve_batch_size",
                   "Sequences in one engine step's forward.", *registry_),
          Register(prometheus::BuildHistogram(), "tierserve_step_tokens",
                   "Tokens computed in one engine step, all sequences together.", *registry_),
          Register(prometheus::BuildGauge(), "tierserve_kv_cache_blocks_used",
                   "KV cache blocks referenced by sequences.", *registry_),
          Register(prometheus::BuildGauge(), "tierserve_kv_cache_blocks_cached",
                   "KV cache blocks held only by the prefix cache (evictable).", *registry_),
          Register(prometheus::BuildGauge(), "tierserve_kv_cache_blocks_total", "KV cache blocks in the pool.",
                   *registry_),
          Register(prometheus::BuildGauge(), "tierserve_kv_cache_usage_ratio",
                   "KV cache blocks used / total (0..1).", *registry_),
          Register(prometheus::BuildCounter(), "tierserve_prefix_cache_queries_total",
                   "Prompt tokens looked up in the prefix cache.", *registry_),
          Register(prometheus::BuildCounter(), "tierserve_prefix_cache_hits_total",
                   "Prompt tokens found in the prefix cache (not computed again).", *registry_),
          Register(prometheus::BuildCounter(), "tierserve_preemptions_total",
                   "Sequences preempted for KV cache blocks (recomputed later).", *registry_),
          Register(prometheus::BuildGauge(), "tierserve_requests_paused",
                   "Running requests that sat the last step out: their client has not read the output "
                   "already sent.",
                   *registry_)} {
  // Every method's series exist from the start, so rate() has a zero to
  // begin from; other codes appear with their first occurrence.
  for (RpcMethod method : kAllRpcMethods) {
    requests_.Add({{"model", ""}, {"method", RpcMethodName(method)}, {"code", "OK"}});
    duration_by_method_[static_cast<size_t>(method)] =
        &request_duration_.Add({{"method", RpcMethodName(method)}}, kRequestDurationBuckets);
  }
}

ServerMetrics::~ServerMetrics() {
  absl::MutexLock lock(&mu_);
  exposer_.reset();
}

absl::Status ServerMetrics::StartExposer(
    std::string_view address, std::function<bool(const std::string&, const std::string&)> auth) {
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
    if (auth) exposer->RegisterAuth(std::move(auth), "tierserve metrics", "/metrics");
    exposer->RegisterCollectable(registry_);
    exposer->RegisterCollectable(process_memory_);
    for (const auto& c : collectables_) exposer->RegisterCollectable(c);
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
    slot.reset(new ModelMetrics(std::string(name), model_families_));
  }
  return *slot;
}

void ServerMetrics::RecordRequest(const std::string& model, RpcMethod method, absl::StatusCode code,
                                  double seconds) {
  const size_t index = static_cast<size_t>(method);
  if (index >= duration_by_method_.size()) return;  // not a RpcMethod value
  const std::string method_name = RpcMethodName(method);
  requests_.Add({{"model", model}, {"method", method_name}, {"code", StatusCodeLabel(code)}}).Increment();
  duration_by_method_[index]->Observe(NonNegative(seconds));
}

void ServerMetrics::AddCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
  absl::MutexLock lock(&mu_);
  if (exposer_ != nullptr) exposer_->RegisterCollectable(collectable);
  collectables_.push_back(std::move(collectable));
}

std::string ServerMetrics::ExpositionText() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_memory_->Collect()) {
    families.push_back(std::move(family));
  }
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  {
    absl::MutexLock lock(&mu_);
    collectables = collectables_;
  }
  for (const auto& c : collectables) {
    for (prometheus::MetricFamily& family : c->Collect()) families.push_back(std::move(family));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace tierserve
