// The server's Prometheus metrics: one registry, typed recording methods, and
// the optional HTTP endpoint (`metrics_listen`) that serves /metrics.
//
// Exported series (names follow Prometheus conventions: prefix `tierserve_`,
// base units, counters end in `_total`):
//
//   tierserve_requests_total{model,method,code}      counter
//   tierserve_request_duration_seconds{method}       histogram, 5 ms .. 600 s
//   tierserve_time_to_first_token_seconds{model}     histogram, 1 ms .. 60 s
//   tierserve_prompt_tokens_total{model}             counter
//   tierserve_generated_tokens_total{model}          counter
//   tierserve_requests_running{model}                gauge
//   tierserve_requests_waiting{model}                gauge
//   tierserve_model_weight_bytes{model,device}       gauge
//   tierserve_request_queue_time_seconds{model}      histogram, 1 ms .. 600 s
//   tierserve_request_prefill_time_seconds{model}    histogram, 1 ms .. 60 s
//   tierserve_inter_token_latency_seconds{model}     histogram, 1 ms .. 2.5 s
//   tierserve_batch_size{model}                      histogram, 1 .. 4096 sequences per step
//   tierserve_step_tokens{model}                     histogram, 1 .. 8192 tokens per step
//   tierserve_kv_cache_blocks_used{model}            gauge
//   tierserve_kv_cache_blocks_cached{model}          gauge
//   tierserve_kv_cache_blocks_total{model}           gauge
//   tierserve_kv_cache_usage_ratio{model}            gauge, used / total
//   tierserve_prefix_cache_queries_total{model}      counter, prompt tokens looked up
//   tierserve_prefix_cache_hits_total{model}         counter, of which found cached
//   tierserve_preemptions_total{model}               counter
//   tierserve_requests_paused{model}                 gauge, running but waiting for their reader
//   tierserve_process_resident_memory_bytes          gauge, read at each scrape
//
// Collectors registered with AddCollectable() add the device memory, and
// each device's capacity and free memory where known (the host's read by
// host_memory.h) (device_memory_collector.h), and the offload traffic, model
// load time and state and build info (model_collectors.h).
//
// Label values come from closed sets, so every metric's cardinality is bounded
// by construction: `method` from RpcMethod, `code` from the 17 gRPC status
// names, `model` from the models registered with AddModel() (the configured
// ones), `device` from the placements of a model's device map.
#ifndef TIERSERVE_SERVER_METRICS_METRICS_H_
#define TIERSERVE_SERVER_METRICS_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/process_memory_collector.h"

namespace tierserve {

// The RPCs of tierserve.v1.Generation and inference.GRPCInferenceService
// (KServe v2), the values of the `method` label. ModelStreamInfer is counted
// per request on the stream (a stream carries many).
enum class RpcMethod {
  kGenerate, kGenerateStream, kTokenize, kListModels,
  kServerLive, kServerReady, kModelReady, kServerMetadata, kModelMetadata, kModelConfig, kModelStatistics,
  kModelInfer, kModelStreamInfer
};
inline constexpr RpcMethod kAllRpcMethods[] = {
    RpcMethod::kGenerate,      RpcMethod::kGenerateStream, RpcMethod::kTokenize,         RpcMethod::kListModels,
    RpcMethod::kServerLive,    RpcMethod::kServerReady,    RpcMethod::kModelReady,       RpcMethod::kServerMetadata,
    RpcMethod::kModelMetadata, RpcMethod::kModelConfig,    RpcMethod::kModelStatistics,  RpcMethod::kModelInfer,
    RpcMethod::kModelStreamInfer};

// The method's name as in the .proto ("GenerateStream").
const char* RpcMethodName(RpcMethod method);

// The gRPC name of a status code ("OK", "INVALID_ARGUMENT"), the value of the
// `code` label. absl::StatusCode and grpc::StatusCode share their numbering,
// so a grpc::StatusCode can be passed through static_cast. A value outside
// the 17 codes is reported as "UNKNOWN".
std::string StatusCodeLabel(absl::StatusCode code);

// Whether the HTTP library (civetweb) was built with IPv6. Debian 12's
// civetweb 1.15 was not: the metrics endpoint then listens on IPv4 only.
bool MetricsEndpointSupportsIpv6();

// Histogram upper bounds, in seconds.
extern const std::vector<double> kRequestDurationBuckets;     // 0.005 .. 600
extern const std::vector<double> kTimeToFirstTokenBuckets;    // 0.001 .. 60
extern const std::vector<double> kQueueTimeBuckets;           // 0.001 .. 600
extern const std::vector<double> kInterTokenLatencyBuckets;   // 0.001 .. 2.5
// Counts per engine step.
extern const std::vector<double> kBatchSizeBuckets;           // 1 .. 4096
extern const std::vector<double> kStepTokensBuckets;          // 1 .. 8192

// The metric families with a `model` label; ServerMetrics owns them, each
// ModelMetrics holds its series.
struct ModelFamilies {
  prometheus::Family<prometheus::Histogram>& ttft;
  prometheus::Family<prometheus::Counter>& prompt_tokens;
  prometheus::Family<prometheus::Counter>& generated_tokens;
  prometheus::Family<prometheus::Gauge>& running;
  prometheus::Family<prometheus::Gauge>& waiting;
  prometheus::Family<prometheus::Gauge>& weight_bytes;
  prometheus::Family<prometheus::Histogram>& queue_time;
  prometheus::Family<prometheus::Histogram>& prefill_time;
  prometheus::Family<prometheus::Histogram>& inter_token;
  prometheus::Family<prometheus::Histogram>& batch_size;
  prometheus::Family<prometheus::Histogram>& step_tokens;
  prometheus::Family<prometheus::Gauge>& kv_used;
  prometheus::Family<prometheus::Gauge>& kv_cached;
  prometheus::Family<prometheus::Gauge>& kv_total;
  prometheus::Family<prometheus::Gauge>& kv_usage;
  prometheus::Family<prometheus::Counter>& prefix_queries;
  prometheus::Family<prometheus::Counter>& prefix_hits;
  prometheus::Family<prometheus::Counter>& preemptions;
  prometheus::Family<prometheus::Gauge>& paused;
};

// The series of one configured model. Handed out by ServerMetrics::AddModel;
// the server keeps the pointer next to the model, so recording costs no
// lookup by name.
//
// Thread-safety: every method may be called from any thread, concurrently
// (prometheus-cpp's metrics are atomic or locked). Owned by the ServerMetrics
// that created it, and valid as long as it.
class ModelMetrics {
 public:
  ModelMetrics(const ModelMetrics&) = delete;
  ModelMetrics& operator=(const ModelMetrics&) = delete;

  const std::string& name() const { return name_; }

  // Time from the request's arrival to its first generated token. A negative
  // value (a clock that went backwards) counts as 0.
  void RecordTimeToFirstToken(double seconds);
  // Prompt tokens of one request (after the chat template). REQUIRES: n >= 0;
  // a negative n is ignored, as a counter never decreases.
  void AddPromptTokens(int64_t n);
  // Generated tokens. REQUIRES: n >= 0 (a negative n is ignored).
  void AddGeneratedTokens(int64_t n);

  // Requests being decoded / queued for this model. Set() states the count
  // (preferred: it cannot drift); Add() moves it by a delta.
  void SetRequestsRunning(int64_t n);
  void AddRequestsRunning(int64_t delta);
  void SetRequestsWaiting(int64_t n);
  void AddRequestsWaiting(int64_t delta);

  // Bytes of this model's weights resting on `device` ("cuda:0", "cpu",
  // "disk"). REQUIRES: `device` is a placement of the model's device map,
  // which keeps the `device` label bounded.
  void SetWeightBytes(std::string_view device, int64_t bytes);

  // The scheduler's view, reported by the engine.
  // Time a request waited in the queue before it first ran.
  void RecordQueueTime(double seconds);
  // Time from a request's first run to its first token.
  void RecordPrefillTime(double seconds);
  // Time between two consecutive tokens of one request.
  void RecordInterTokenLatency(double seconds);
  // One engine step: sequences in the forward and tokens computed.
  void RecordStep(int64_t sequences, int64_t tokens);
  // The KV pool after a step: blocks referenced by sequences, blocks held
  // only by the prefix cache, and all blocks.
  void SetKvCacheBlocks(int64_t used, int64_t cached, int64_t total);
  // Prompt tokens looked up in the prefix cache and those found.
  void AddPrefixCache(int64_t queried_tokens, int64_t hit_tokens);
  void AddPreemptions(int64_t n);
  // Running requests that sat the last step out because their client has
  // not read the output already sent.
  void SetRequestsPaused(int64_t n);

 private:
  friend class ServerMetrics;
  ModelMetrics(std::string name, const ModelFamilies& f);

  const std::string name_;
  // The metrics below are owned by ServerMetrics' registry.
  prometheus::Family<prometheus::Gauge>& weight_bytes_;
  prometheus::Histogram& ttft_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generated_tokens_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Histogram& queue_time_;
  prometheus::Histogram& prefill_time_;
  prometheus::Histogram& inter_token_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& step_tokens_;
  prometheus::Gauge& kv_used_;
  prometheus::Gauge& kv_cached_;
  prometheus::Gauge& kv_total_;
  prometheus::Gauge& kv_usage_;
  prometheus::Counter& prefix_queries_;
  prometheus::Counter& prefix_hits_;
  prometheus::Counter& preemptions_;
  prometheus::Gauge& paused_;
};

// Owns the registry of every tierserve metric and, once StartExposer() has
// succeeded, the HTTP server that exposes it. Create one per process; the
// registry is also reachable through registry() for metrics added later.
//
// Thread-safety: every method may be called from any thread, concurrently.
// The ModelMetrics handed out stay valid until the ServerMetrics is
// destroyed, which stops the HTTP server first.
class ServerMetrics {
 public:
  struct Options {
    // Where the resident memory is read from; tests pass a file of their own.
    std::string statm_path = "/proc/self/statm";
    // Threads of the HTTP server answering scrapes: each connection holds
    // one until its request is complete or times out.
    int exposer_threads = 8;
    // How long a scrape may take to send its request and read the answer;
    // past it the connection is closed, so a slow or half-open scraper
    // cannot hold a thread for long.
    int exposer_request_timeout_ms = 5000;
  };

  ServerMetrics() : ServerMetrics(Options()) {}
  explicit ServerMetrics(Options options);
  ~ServerMetrics();

  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Serves every metric at http://ADDRESS/metrics. `address` is
  // "IPV4:PORT" or "[IPV6]:PORT" (a literal address, as `metrics_listen`
  // takes it; IPv6 only when MetricsEndpointSupportsIpv6()); port 0 asks the
  // kernel for a free port (see listening_port()). The endpoint also serves
  // prometheus-cpp's own `exposer_*` metrics about its scrapes.
  // Errors: INVALID_ARGUMENT for a malformed or unsupported address,
  // UNAVAILABLE when the port is taken or the address cannot be bound (the
  // message says which), FAILED_PRECONDITION when already started.
  // Stopping the endpoint (destruction) can take up to 2 s: civetweb's
  // listener wakes on a fixed 2 s poll.
  // `auth` (user, password) -> allowed, when set, guards /metrics with HTTP
  // basic authentication; without it /metrics is open.
  absl::Status StartExposer(
      std::string_view address,
      std::function<bool(const std::string&, const std::string&)> auth = nullptr);

  // The TCP port the HTTP server listens on, or 0 when it is not started.
  int listening_port() const;

  // The series of the model named `name`, created with every count at zero the
  // first time; later calls with the same name return the same object.
  ModelMetrics& AddModel(std::string_view name);

  // Records one finished RPC: its status code and its duration from arrival
  // to the last byte sent (a negative duration counts as 0).
  // `model`: the configured model the call asked for, "" when none (the
  // caller makes sure it is a configured name: label values stay bounded).
  void RecordRequest(const std::string& model, RpcMethod method, absl::StatusCode code, double seconds);

  // Adds a collector asked for its families at each scrape (and by
  // ExpositionText), whether the endpoint is started yet or not.
  void AddCollectable(std::shared_ptr<prometheus::Collectable> collectable);

  // Everything /metrics serves, in the Prometheus text format (0.0.4).
  std::string ExpositionText() const;

  prometheus::Registry& registry() { return *registry_; }

 private:
  const Options options_;
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<ProcessMemoryCollector> process_memory_;

  // Families owned by registry_.
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  const ModelFamilies model_families_;
  // request_duration_'s series, indexed by RpcMethod, so that recording does
  // not build a histogram only to find it exists.
  std::array<prometheus::Histogram*, std::size(kAllRpcMethods)> duration_by_method_{};

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<ModelMetrics>> models_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_ ABSL_GUARDED_BY(mu_);
  // Declared last: destroyed first, so no scrape runs while the rest is torn down.
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_METRICS_METRICS_H_
