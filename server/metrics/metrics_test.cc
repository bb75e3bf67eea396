#include "server/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

// --- A reader of the Prometheus text format, enough for these tests --------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses `name{k="v",...} value` lines; comments and blank lines are skipped.
// A line it cannot read fails the test.
std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> samples;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) {
      ADD_FAILURE() << "unreadable line: " << line;
      continue;
    }
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') break;
        const std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) ++j;
          value += line[j];
        }
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') {
        ADD_FAILURE() << "unreadable labels: " << line;
        continue;
      }
      ++i;
    }
    char* end = nullptr;
    s.value = std::strtod(line.c_str() + i, &end);
    if (end == line.c_str() + i) {
      ADD_FAILURE() << "unreadable value: " << line;
      continue;
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

// The value of the series `name{labels}` (exactly those labels; `le` compared
// as a number, as its text form is the serializer's choice), or nullopt.
std::optional<double> Value(const std::vector<Sample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) {
  for (const Sample& s : samples) {
    if (s.name != name || s.labels.size() != labels.size()) continue;
    bool same = true;
    for (const auto& [key, value] : labels) {
      auto it = s.labels.find(key);
      if (it == s.labels.end()) {
        same = false;
      } else if (key == "le") {
        same = same && std::strtod(it->second.c_str(), nullptr) == std::strtod(value.c_str(), nullptr);
      } else {
        same = same && it->second == value;
      }
    }
    if (same) return s.value;
  }
  return std::nullopt;
}

size_t CountSeries(const std::vector<Sample>& samples, const std::string& name) {
  size_t n = 0;
  for (const Sample& s : samples) n += s.name == name;
  return n;
}

std::string FakeStatm(const std::string& name, int64_t resident_pages) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::trunc) << "1000 " << resident_pages << " 30 10 0 200 0\n";
  return path;
}

// --- Requests ---------------------------------------------------------------

TEST(ServerMetrics, EveryMethodStartsWithZeroOkRequests) {
  ServerMetrics metrics;
  const auto samples = ParseExposition(metrics.ExpositionText());
  const char* const methods[] = {"Generate",   "GenerateStream", "Tokenize",       "ListModels",
                                 "ServerLive", "ServerReady",    "ModelReady",     "ServerMetadata",
                                 "ModelMetadata", "ModelConfig", "ModelStatistics", "ModelInfer",
                                 "ModelStreamInfer"};
  for (const char* method : methods) {
    EXPECT_EQ(Value(samples, "tierserve_requests_total", {{"model", ""}, {"method", method}, {"code", "OK"}}), 0.0)
        << method;
    EXPECT_EQ(Value(samples, "tierserve_request_duration_seconds_count", {{"method", method}}), 0.0)
        << method;
  }
  EXPECT_EQ(CountSeries(samples, "tierserve_requests_total"), std::size(methods));
}

TEST(ServerMetrics, RequestsCountedByMethodAndGrpcCodeName) {
  ServerMetrics metrics;
  metrics.RecordRequest("", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.1);
  metrics.RecordRequest("", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.1);
  metrics.RecordRequest("", RpcMethod::kGenerate, absl::StatusCode::kInvalidArgument, 0.001);
  metrics.RecordRequest("", RpcMethod::kGenerateStream, absl::StatusCode::kCancelled, 2);
  metrics.RecordRequest("", RpcMethod::kTokenize, absl::StatusCode::kResourceExhausted, 0.01);
  const auto samples = ParseExposition(metrics.ExpositionText());
  const std::string name = "tierserve_requests_total";
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "Generate"}, {"code", "OK"}}), 2.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "Generate"}, {"code", "INVALID_ARGUMENT"}}), 1.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "GenerateStream"}, {"code", "CANCELLED"}}), 1.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "GenerateStream"}, {"code", "OK"}}), 0.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "Tokenize"}, {"code", "RESOURCE_EXHAUSTED"}}), 1.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "ListModels"}, {"code", "OK"}}), 0.0);
  // One OK series per method, and the three other codes seen.
  EXPECT_EQ(CountSeries(samples, name), std::size(kAllRpcMethods) + 3);
}

TEST(ServerMetrics, RequestsCountedByModel) {
  ServerMetrics metrics;
  metrics.RecordRequest("a", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.1);
  metrics.RecordRequest("b", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.1);
  metrics.RecordRequest("b", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.1);
  metrics.RecordRequest("", RpcMethod::kGenerate, absl::StatusCode::kNotFound, 0.1);
  const auto samples = ParseExposition(metrics.ExpositionText());
  const std::string name = "tierserve_requests_total";
  EXPECT_EQ(Value(samples, name, {{"model", "a"}, {"method", "Generate"}, {"code", "OK"}}), 1.0);
  EXPECT_EQ(Value(samples, name, {{"model", "b"}, {"method", "Generate"}, {"code", "OK"}}), 2.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "Generate"}, {"code", "OK"}}), 0.0);
  EXPECT_EQ(Value(samples, name, {{"model", ""}, {"method", "Generate"}, {"code", "NOT_FOUND"}}), 1.0);
}

TEST(ServerMetrics, StatusCodeLabelsAreGrpcNamesAndBounded) {
  EXPECT_EQ(StatusCodeLabel(absl::StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeLabel(absl::StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeLabel(absl::StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(StatusCodeLabel(absl::StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeLabel(absl::StatusCode::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeLabel(static_cast<absl::StatusCode>(17)), "UNKNOWN");
  EXPECT_EQ(StatusCodeLabel(static_cast<absl::StatusCode>(-1)), "UNKNOWN");

  ServerMetrics metrics;
  metrics.RecordRequest("", RpcMethod::kListModels, static_cast<absl::StatusCode>(99), 0.01);
  const auto samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_requests_total", {{"model", ""}, {"method", "ListModels"}, {"code", "UNKNOWN"}}),
            1.0);
}

TEST(ServerMetrics, RequestDurationHistogramHasCumulativeBucketsSumAndCount) {
  ServerMetrics metrics;
  // 3 ms: first bucket (5 ms). 200 ms: the 0.25 bucket. 700 s: past the last
  // bound (600 s), so only +Inf. -1 s: clamped to 0, first bucket.
  for (double s : {0.003, 0.2, 700.0, -1.0}) {
    metrics.RecordRequest("", RpcMethod::kGenerateStream, absl::StatusCode::kOk, s);
  }
  const auto samples = ParseExposition(metrics.ExpositionText());
  const std::string bucket = "tierserve_request_duration_seconds_bucket";
  auto at = [&](const char* le) {
    return Value(samples, bucket, {{"method", "GenerateStream"}, {"le", le}});
  };
  EXPECT_EQ(at("0.005"), 2.0);
  EXPECT_EQ(at("0.1"), 2.0);
  EXPECT_EQ(at("0.25"), 3.0);
  EXPECT_EQ(at("600"), 3.0);
  EXPECT_EQ(at("+Inf"), 4.0);
  EXPECT_EQ(CountSeries(samples, bucket), std::size(kAllRpcMethods) * (kRequestDurationBuckets.size() + 1));
  EXPECT_EQ(Value(samples, "tierserve_request_duration_seconds_count", {{"method", "GenerateStream"}}),
            4.0);
  const auto sum =
      Value(samples, "tierserve_request_duration_seconds_sum", {{"method", "GenerateStream"}});
  ASSERT_TRUE(sum.has_value());
  EXPECT_NEAR(*sum, 700.203, 1e-9);
  // The other methods saw nothing.
  EXPECT_EQ(Value(samples, bucket, {{"method", "Generate"}, {"le", "+Inf"}}), 0.0);
}

TEST(ServerMetrics, BucketBoundsSpanTheDocumentedRanges) {
  EXPECT_EQ(kRequestDurationBuckets.front(), 0.005);
  EXPECT_EQ(kRequestDurationBuckets.back(), 600.0);
  EXPECT_EQ(kTimeToFirstTokenBuckets.front(), 0.001);
  EXPECT_EQ(kTimeToFirstTokenBuckets.back(), 60.0);
  EXPECT_EQ(kQueueTimeBuckets.back(), 600.0);
  EXPECT_EQ(kInterTokenLatencyBuckets.front(), 0.001);
  EXPECT_EQ(kBatchSizeBuckets.back(), 4096.0);  // the largest max_batch_size
  for (const auto* buckets : {&kRequestDurationBuckets, &kTimeToFirstTokenBuckets, &kQueueTimeBuckets,
                              &kInterTokenLatencyBuckets, &kBatchSizeBuckets, &kStepTokensBuckets}) {
    for (size_t i = 1; i < buckets->size(); ++i) EXPECT_LT((*buckets)[i - 1], (*buckets)[i]);
  }
}

// --- Per-model series -------------------------------------------------------

TEST(ServerMetrics, ModelSeriesStartAtZero) {
  ServerMetrics metrics;
  metrics.AddModel("smollm2");
  const auto samples = ParseExposition(metrics.ExpositionText());
  const std::map<std::string, std::string> model = {{"model", "smollm2"}};
  EXPECT_EQ(Value(samples, "tierserve_prompt_tokens_total", model), 0.0);
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", model), 0.0);
  EXPECT_EQ(Value(samples, "tierserve_requests_running", model), 0.0);
  EXPECT_EQ(Value(samples, "tierserve_requests_waiting", model), 0.0);
  EXPECT_EQ(Value(samples, "tierserve_time_to_first_token_seconds_count", model), 0.0);
}

TEST(ServerMetrics, ModelTokensGaugesAndTimeToFirstToken) {
  ServerMetrics metrics;
  ModelMetrics& model = metrics.AddModel("smollm2");
  EXPECT_EQ(model.name(), "smollm2");
  model.AddPromptTokens(12);
  model.AddPromptTokens(30);
  model.AddPromptTokens(-5);  // ignored: counters never go down
  model.AddGeneratedTokens(100);
  model.SetRequestsRunning(3);
  model.AddRequestsRunning(-1);
  model.SetRequestsWaiting(7);
  model.AddRequestsWaiting(2);
  model.SetWeightBytes("cpu", 98362432);
  model.SetWeightBytes("disk", 1000);
  model.SetWeightBytes("disk", 2000);  // replaces, does not add
  // TTFT: 0.5 ms -> first bucket (1 ms); 30 ms -> 0.05; 90 s -> +Inf only.
  model.RecordTimeToFirstToken(0.0005);
  model.RecordTimeToFirstToken(0.03);
  model.RecordTimeToFirstToken(90);

  const auto samples = ParseExposition(metrics.ExpositionText());
  const std::map<std::string, std::string> m = {{"model", "smollm2"}};
  EXPECT_EQ(Value(samples, "tierserve_prompt_tokens_total", m), 42.0);
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", m), 100.0);
  EXPECT_EQ(Value(samples, "tierserve_requests_running", m), 2.0);
  EXPECT_EQ(Value(samples, "tierserve_requests_waiting", m), 9.0);
  EXPECT_EQ(Value(samples, "tierserve_model_weight_bytes", {{"model", "smollm2"}, {"device", "cpu"}}),
            98362432.0);
  EXPECT_EQ(Value(samples, "tierserve_model_weight_bytes", {{"model", "smollm2"}, {"device", "disk"}}),
            2000.0);
  EXPECT_EQ(CountSeries(samples, "tierserve_model_weight_bytes"), 2u);

  const std::string bucket = "tierserve_time_to_first_token_seconds_bucket";
  EXPECT_EQ(Value(samples, bucket, {{"model", "smollm2"}, {"le", "0.001"}}), 1.0);
  EXPECT_EQ(Value(samples, bucket, {{"model", "smollm2"}, {"le", "0.025"}}), 1.0);
  EXPECT_EQ(Value(samples, bucket, {{"model", "smollm2"}, {"le", "0.05"}}), 2.0);
  EXPECT_EQ(Value(samples, bucket, {{"model", "smollm2"}, {"le", "60"}}), 2.0);
  EXPECT_EQ(Value(samples, bucket, {{"model", "smollm2"}, {"le", "+Inf"}}), 3.0);
  EXPECT_EQ(CountSeries(samples, bucket), kTimeToFirstTokenBuckets.size() + 1);
  EXPECT_EQ(Value(samples, "tierserve_time_to_first_token_seconds_count", m), 3.0);
  const auto sum = Value(samples, "tierserve_time_to_first_token_seconds_sum", m);
  ASSERT_TRUE(sum.has_value());
  EXPECT_NEAR(*sum, 90.0305, 1e-9);
}

TEST(ServerMetrics, EngineStepSeries) {
  ServerMetrics metrics;
  ModelMetrics& model = metrics.AddModel("smollm2");
  const std::map<std::string, std::string> m = {{"model", "smollm2"}};
  auto samples = ParseExposition(metrics.ExpositionText());
  for (const char* zero : {"tierserve_kv_cache_blocks_used", "tierserve_kv_cache_usage_ratio",
                           "tierserve_prefix_cache_hits_total", "tierserve_preemptions_total",
                           "tierserve_batch_size_count", "tierserve_inter_token_latency_seconds_count"}) {
    EXPECT_EQ(Value(samples, zero, m), 0.0) << zero;
  }
  model.RecordStep(1, 40);
  model.RecordStep(32, 32);
  model.SetKvCacheBlocks(30, 10, 120);
  model.AddPrefixCache(100, 64);
  model.AddPrefixCache(20, 0);
  model.AddPreemptions(2);
  model.AddPreemptions(-1);  // ignored
  model.RecordQueueTime(0.2);
  model.RecordPrefillTime(0.05);
  model.RecordInterTokenLatency(0.012);
  model.RecordInterTokenLatency(0.03);
  samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_batch_size_bucket", {{"model", "smollm2"}, {"le", "1"}}), 1.0);
  EXPECT_EQ(Value(samples, "tierserve_batch_size_bucket", {{"model", "smollm2"}, {"le", "16"}}), 1.0);
  EXPECT_EQ(Value(samples, "tierserve_batch_size_bucket", {{"model", "smollm2"}, {"le", "32"}}), 2.0);
  EXPECT_EQ(Value(samples, "tierserve_batch_size_sum", m), 33.0);
  EXPECT_EQ(Value(samples, "tierserve_step_tokens_sum", m), 72.0);
  EXPECT_EQ(Value(samples, "tierserve_kv_cache_blocks_used", m), 30.0);
  EXPECT_EQ(Value(samples, "tierserve_kv_cache_blocks_cached", m), 10.0);
  EXPECT_EQ(Value(samples, "tierserve_kv_cache_blocks_total", m), 120.0);
  EXPECT_EQ(Value(samples, "tierserve_kv_cache_usage_ratio", m), 0.25);
  EXPECT_EQ(Value(samples, "tierserve_prefix_cache_queries_total", m), 120.0);
  EXPECT_EQ(Value(samples, "tierserve_prefix_cache_hits_total", m), 64.0);
  EXPECT_EQ(Value(samples, "tierserve_preemptions_total", m), 2.0);
  EXPECT_EQ(Value(samples, "tierserve_request_queue_time_seconds_count", m), 1.0);
  EXPECT_EQ(Value(samples, "tierserve_request_prefill_time_seconds_count", m), 1.0);
  EXPECT_EQ(Value(samples, "tierserve_inter_token_latency_seconds_bucket", {{"model", "smollm2"}, {"le", "0.015"}}),
            1.0);
  EXPECT_EQ(Value(samples, "tierserve_inter_token_latency_seconds_count", m), 2.0);
}

TEST(ServerMetrics, AddModelIsIdempotentAndModelsAreSeparate) {
  ServerMetrics metrics;
  ModelMetrics& a = metrics.AddModel("a");
  ModelMetrics& b = metrics.AddModel("b");
  EXPECT_EQ(&metrics.AddModel("a"), &a);
  EXPECT_NE(&a, &b);
  a.AddGeneratedTokens(5);
  metrics.AddModel("a").AddGeneratedTokens(6);
  b.AddGeneratedTokens(1);
  const auto samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", {{"model", "a"}}), 11.0);
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", {{"model", "b"}}), 1.0);
  EXPECT_EQ(CountSeries(samples, "tierserve_generated_tokens_total"), 2u);
}

TEST(ServerMetrics, ResidentMemoryIsReadAtEachScrape) {
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  ServerMetrics::Options options;
  options.statm_path = FakeStatm("metrics_statm", 250);
  ServerMetrics metrics(options);
  auto samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_process_resident_memory_bytes"), 250.0 * page);
  FakeStatm("metrics_statm", 300);
  samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_process_resident_memory_bytes"), 300.0 * page);
}

TEST(ServerMetrics, ConcurrentRecordingLosesNothing) {
  ServerMetrics metrics;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      // Half the threads also race to create the same model's series.
      ModelMetrics& model = metrics.AddModel(t % 2 ? "odd" : "shared");
      ModelMetrics& shared = metrics.AddModel("shared");
      for (int i = 0; i < kPerThread; ++i) {
        metrics.RecordRequest("", RpcMethod::kGenerate, absl::StatusCode::kOk, 0.01);
        shared.AddGeneratedTokens(1);
        model.AddRequestsRunning(1);
        model.AddRequestsRunning(-1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const auto samples = ParseExposition(metrics.ExpositionText());
  EXPECT_EQ(Value(samples, "tierserve_requests_total", {{"model", ""}, {"method", "Generate"}, {"code", "OK"}}),
            double{kThreads * kPerThread});
  EXPECT_EQ(Value(samples, "tierserve_request_duration_seconds_count", {{"method", "Generate"}}),
            double{kThreads * kPerThread});
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", {{"model", "shared"}}),
            double{kThreads * kPerThread});
  EXPECT_EQ(Value(samples, "tierserve_requests_running", {{"model", "shared"}}), 0.0);
  EXPECT_EQ(Value(samples, "tierserve_requests_running", {{"model", "odd"}}), 0.0);
}

// --- The HTTP endpoint ------------------------------------------------------

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
class PortHolder {
 public:
  PortHolder() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
        ::listen(fd_, 1) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      ADD_FAILURE() << "cannot hold a port: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(sa.sin_port);
  }
  ~PortHolder() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// GET `path` from 127.0.0.1:port over HTTP/1.0; the whole response (status
// line, headers, body), or "" after a failure recorded in the test.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return "";
  }
  timeval timeout{};
  timeout.tv_sec = 10;  // a hung server fails the test instead of blocking it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
  } else {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      ADD_FAILURE() << "send: " << std::strerror(errno);
    } else {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
      if (n < 0) ADD_FAILURE() << "recv: " << std::strerror(errno);
    }
  }
  ::close(fd);
  return response;
}

TEST(ServerMetricsExposer, ServesMetricsOverHttp) {
  ServerMetrics metrics;
  EXPECT_EQ(metrics.listening_port(), 0);
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  const int port = metrics.listening_port();
  ASSERT_GT(port, 0);

  metrics.RecordRequest("", RpcMethod::kGenerateStream, absl::StatusCode::kOk, 0.3);
  metrics.AddModel("smollm2").AddGeneratedTokens(17);
  const std::string response = HttpGet(port, "/metrics");
  ASSERT_THAT(response, HasSubstr("200 OK"));
  const size_t body_start = response.find("\r\n\r\n");
  ASSERT_NE(body_start, std::string::npos);
  const auto samples = ParseExposition(response.substr(body_start + 4));
  EXPECT_EQ(Value(samples, "tierserve_requests_total", {{"model", ""}, {"method", "GenerateStream"}, {"code", "OK"}}),
            1.0);
  EXPECT_EQ(Value(samples, "tierserve_request_duration_seconds_count", {{"method", "GenerateStream"}}),
            1.0);
  EXPECT_EQ(Value(samples, "tierserve_generated_tokens_total", {{"model", "smollm2"}}), 17.0);
  const auto rss = Value(samples, "tierserve_process_resident_memory_bytes");
  ASSERT_TRUE(rss.has_value());
  EXPECT_GT(*rss, 1 << 20);  // this test binary is well over 1 MiB resident

  // Only /metrics is served.
  EXPECT_THAT(HttpGet(port, "/other"), HasSubstr("404"));
}

// Scrapers that open a connection and never finish their request hold an
// HTTP thread each; the others must still be answered.
TEST(ServerMetricsExposer, HalfOpenScrapersDoNotBlockOthers) {
  ServerMetrics metrics;
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  const int port = metrics.listening_port();
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {  // twice the 2 threads the exposer had before
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    const std::string partial = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";  // no blank line
    ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
    stalled.push_back(fd);
  }
  // HttpGet gives up after 10 s, well before a stalled thread would be freed
  // by the old 30 s civetweb default.
  EXPECT_THAT(HttpGet(port, "/metrics"), HasSubstr("200 OK"));
  for (int fd : stalled) ::close(fd);
}

TEST(ServerMetricsExposer, PortInUseIsAClearError) {
  PortHolder taken;
  ASSERT_GT(taken.port(), 0);
  ServerMetrics metrics;
  const std::string address = "127.0.0.1:" + std::to_string(taken.port());
  const absl::Status status = metrics.StartExposer(address);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("metrics_listen \"" + address + "\""));
  EXPECT_THAT(status.message(), HasSubstr("already in use"));
  EXPECT_EQ(metrics.listening_port(), 0);
  // The failure leaves the object usable.
  EXPECT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  EXPECT_GT(metrics.listening_port(), 0);
}

TEST(ServerMetricsExposer, AddressNotOnThisMachineIsAClearError) {
  ServerMetrics metrics;
  // 192.0.2.0/24 is TEST-NET-1, assigned to no host.
  const absl::Status status = metrics.StartExposer("192.0.2.1:0");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("not an address of this machine"));
}

TEST(ServerMetricsExposer, StartingTwiceIsAnError) {
  ServerMetrics metrics;
  ASSERT_TRUE(metrics.StartExposer("127.0.0.1:0").ok());
  const absl::Status status = metrics.StartExposer("127.0.0.1:0");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("already serving"));
}

TEST(ServerMetricsExposer, Ipv6ServesOrIsRefusedClearly) {
  ServerMetrics metrics;
  const absl::Status status = metrics.StartExposer("[::1]:0");
  if (MetricsEndpointSupportsIpv6()) {
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_GT(metrics.listening_port(), 0);
  } else {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("IPv6 is not supported"));
    EXPECT_THAT(status.message(), HasSubstr("0.0.0.0:9464"));
  }
}

TEST(ServerMetricsExposer, MalformedAddressesAreInvalidArgument) {
  ServerMetrics metrics;
  for (const char* address :
       {"", "9464", ":9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1",
        "127.0.0.1:94x", "1.2.3:80", "127.0.0.1:80,127.0.0.1:81", "127.0.0.1:8080s", "::1:9464",
        "[::1]", "[::1]9464", "[nothost]:80", "[::1:80"}) {
    const absl::Status status = metrics.StartExposer(address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << address << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr("IPV4:PORT or [IPV6]:PORT")) << address;
  }
  EXPECT_EQ(metrics.listening_port(), 0);
}

}  // namespace
}  // namespace tierserve
