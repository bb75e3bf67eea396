// The daemon's life: read the config, listen (health NOT_SERVING), load the
// models, serve (SERVING), and on SIGTERM/SIGINT drain: stop accepting, let
// running requests finish up to the grace period, exit 0.
#include "server/serve_command.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <signal.h>
#include <unistd.h>

#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "git_commit.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/thread_pool.h"
#include "runtime/device/device.h"
#include "runtime/engine/engine.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"
#include "runtime/placement/module_report.h"
#include "runtime/stream/streamer.h"
#include "server/common_flags.h"
#include "server/config.h"
#include "server/load_progress.h"
#include "server/config_flags.h"
#include "server/generation_service.h"
#include "server/health_service.h"
#include "server/heap_trimmer.h"
#include "server/kserve_service.h"
#include "server/model_plan.h"
#include "server/security.h"
#include "server/metrics/device_memory_collector.h"
#include "server/metrics/host_memory.h"
#include "server/metrics/metrics.h"
#include "server/metrics/model_collectors.h"
#include "server/metrics/process_memory_collector.h"

ABSL_FLAG(std::optional<std::string>, listen, std::nullopt, "gRPC address host:port (overrides server.listen).");
ABSL_FLAG(std::optional<std::string>, metrics_listen, std::nullopt,
          "Prometheus /metrics address host:port (overrides server.metrics_listen).");
ABSL_FLAG(std::optional<int64_t>, max_queued_requests, std::nullopt,
          "Requests that may wait per model before RESOURCE_EXHAUSTED (overrides the file).");

ABSL_FLAG(int64_t, testing_max_unread_stream_bytes, 256 << 10,
          "For tests: output a GenerateStream may hold unread by its client before the request "
          "pauses (production value 256 KiB).");
ABSL_FLAG(int32_t, testing_load_delay_ms, 0,
          "For tests: wait this long after listening before loading the models, so the "
          "loading state (health NOT_SERVING, UNAVAILABLE) can be observed.");

namespace tierserve {
namespace {

constexpr char kServiceName[] = "tierserve.v1.Generation";
constexpr char kKServeServiceName[] = "inference.GRPCInferenceService";
// Between heap trims (see HeapTrimmer).
constexpr std::chrono::seconds kHeapTrimInterval(5);

// Removes gRPC's reflection plugin from a ServerBuilder.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
      return p->name() == "proto_server_reflection";
    });
  }
};

// One line for the log: transport, keys, what is open, /metrics.
std::string DescribeSecurity(const ServerSecurity& s) {
  std::string line = absl::StrCat("gRPC ", s.mutual_tls ? "over mutual TLS" : s.tls ? "over TLS" : "in plaintext");
  if (s.api_keys == nullptr) {
    absl::StrAppend(&line, ", no API keys");
  } else {
    std::vector<std::string> open;
    if (s.health_open) open.push_back("health");
    if (s.reflection_open) open.push_back("reflection");
    absl::StrAppend(&line, ", ", s.api_keys->size(), " API keys (open without a key: ",
                    open.empty() ? "none" : absl::StrJoin(open, ", "), ")");
    if (!s.reflection_open) absl::StrAppend(&line, ", reflection off");
  }
  absl::StrAppend(&line, ", /metrics ", s.metrics_auth ? "with basic auth" : "open");
  return line;
}

// libprotobuf logs an error for every request whose string field is not
// UTF-8 (the request itself is answered INVALID_ARGUMENT): any client could
// fill the log with them. Its messages are passed on at most once per
// kProtobufLogInterval, with the count of those left out; fatal ones always.
constexpr std::chrono::seconds kProtobufLogInterval(10);
void RateLimitedProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                            const std::string& message) {
  static std::mutex mu;
  static std::chrono::steady_clock::time_point last;
  static bool logged = false;
  static int64_t left_out = 0;
  int64_t before = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    const auto now = std::chrono::steady_clock::now();
    if (level != google::protobuf::LOGLEVEL_FATAL && logged && now - last < kProtobufLogInterval) {
      ++left_out;
      return;
    }
    logged = true;
    last = now;
    before = std::exchange(left_out, 0);
  }
  std::cerr << "tierserve: libprotobuf (" << file << ":" << line << "): " << message;
  if (before > 0) std::cerr << " (" << before << " messages of libprotobuf left out before this one)";
  std::cerr << std::endl;
}

std::optional<RpcMethod> MethodFromName(const std::string& name) {
  for (RpcMethod m : kAllRpcMethods)
    if (name == RpcMethodName(m)) return m;
  return std::nullopt;
}

int Fail(const absl::Status& s) {
  std::cerr << "tierserve serve: " << s.message() << "\n";
  return 1;
}

// The engine of model `m`: batch bounds from its config, and a KV pool of
// KvCacheBlocks.
absl::StatusOr<Engine::Options> EngineOptionsFor(const ModelServingConfig& m, const ServerConfig& config,
                                                 const CausalLM& model) {
  Engine::Options o;
  o.name = m.name;
  o.max_queued = static_cast<int>(config.max_queued_requests);
  o.max_batch_size = m.max_batch_size;
  o.max_step_tokens = m.max_batch_tokens;
  o.kv_block_tokens = m.kv_block_tokens;
  o.kv_dtype = m.kv_cache_dtype;
  o.prefix_caching = m.prefix_caching;
  TS_ASSIGN_OR_RETURN(o.kv_blocks, KvCacheBlocks(m, model.config(), model.KvDim()));
  return o;
}

OffloadSnapshot OffloadSnapshotOf(const StreamerStats& s) {
  OffloadSnapshot o;
  o.groups_staged = s.groups_read;
  o.bytes_from_disk = s.bytes_read;
  o.bytes_to_execution = s.bytes_copied;
  o.transfer_seconds = s.read_seconds;
  o.stall_seconds = s.stall_seconds;
  o.prefetch_hits = s.prefetch_hits;
  o.activation_bytes = s.activation_bytes;
  o.activation_seconds = s.activation_seconds;
  return o;
}

}  // namespace

int RunServeCommand(const std::vector<std::string>& args) {
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ParseCommandFlags("serve",
                    "tierserve serve [--config FILE] [flags]\n"
                    "Serves the models of the config over gRPC (tierserve.v1.Generation, the KServe v2 /\n"
                    "Triton inference protocol inference.GRPCInferenceService, health, reflection) and\n"
                    "Prometheus metrics. Flags override the file.",
                    args, /*reads_config=*/true);

  FlagOverrides overrides;
  overrides.listen = absl::GetFlag(FLAGS_listen);
  overrides.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  overrides.max_queued_requests = absl::GetFlag(FLAGS_max_queued_requests);
  if (absl::GetFlag(FLAGS_threads) >= 0) overrides.threads = absl::GetFlag(FLAGS_threads);
  absl::StatusOr<ServerConfig> loaded = ConfigFromFlags(overrides);
  if (!loaded.ok()) return Fail(loaded.status());
  ServerConfig config = *std::move(loaded);
  if (config.models.empty()) {
    return Fail(absl::InvalidArgumentError("no model to serve: give --config FILE with models, or --model PATH"));
  }

  // TLS material, API keys and the metrics password are read and checked
  // before anything else starts.
  absl::StatusOr<ServerSecurity> security = LoadServerSecurity(config);
  if (!security.ok()) return Fail(security.status());

  // Everything a model needs is checked before the daemon listens.
  for (ModelServingConfig& m : config.models) {
    if (absl::Status s = CheckServable(m, config.source); !s.ok()) return Fail(s);
    // Covered and sized without reading weights: an auto map becomes the planned one, an
    // explicit map is checked against its budgets.
    absl::StatusOr<ModelPlan> plan = PlanModel(m, config);
    if (!plan.ok()) return Fail(plan.status());
    std::cerr << "tierserve: plan of " << FormatPlan(m, *plan) << std::flush;
    m.device_map = std::move(plan->map);
  }

  // Every model's sim:N placements share these devices (and their capacity).
  // Declared before the metrics and the models, which read and hold them.
  DeviceSet devices(SimDeviceOptions{config.sim_memory_bytes,
                                     static_cast<double>(config.sim_link_bytes_per_second),
                                     config.sim_link_latency_us * 1e-6});
  // Metrics first: the observer records into them from every thread.
  ServerMetrics metrics;
  if (!config.metrics_listen.empty()) {
    if (absl::Status s = metrics.StartExposer(config.metrics_listen, security->metrics_auth); !s.ok()) {
      return Fail(s);
    }
  }
  std::map<std::string, ModelMetrics*> model_metrics;
  for (const ModelServingConfig& m : config.models) model_metrics[m.name] = &metrics.AddModel(m.name);
  // Load duration and state, offload traffic and the build, read at each scrape.
  auto load_state = std::make_shared<ModelLoadCollector>();
  for (const ModelServingConfig& m : config.models) load_state->AddModel(m.name);
  metrics.AddCollectable(load_state);
  auto offload = std::make_shared<OffloadCollector>();
  metrics.AddCollectable(offload);
  metrics.AddCollectable(std::make_shared<BuildInfoCollector>(TIERSERVE_VERSION, TIERSERVE_GIT_COMMIT,
                                                              TIERSERVE_BUILD_CUDA != 0));
  // What KServe's ModelStatistics reports, fed by the same hooks.
  InferenceStatistics statistics;
  ServiceObserver observer;
  observer.on_request = [&metrics, &statistics](const std::string& model, const std::string& method,
                                                grpc::StatusCode code, double seconds) {
    if (auto m = MethodFromName(method)) {
      metrics.RecordRequest(model, *m, static_cast<absl::StatusCode>(code), seconds);
      if (!model.empty() && (*m == RpcMethod::kGenerate || *m == RpcMethod::kGenerateStream ||
                             *m == RpcMethod::kModelInfer || *m == RpcMethod::kModelStreamInfer)) {
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        statistics.RequestEnded(model, code == grpc::StatusCode::OK, seconds,
                                static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()));
      }
    }
  };
  observer.on_first_token = [&model_metrics](const std::string& model, double seconds) {
    model_metrics.at(model)->RecordTimeToFirstToken(seconds);
  };
  observer.on_sequence = [&model_metrics, &statistics](const std::string& model, int64_t prompt, int64_t generated) {
    statistics.SequenceEnded(model);
    model_metrics.at(model)->AddPromptTokens(prompt);
    model_metrics.at(model)->AddGeneratedTokens(generated);
  };
  observer.on_job = [&model_metrics](const std::string& model, int waiting, int running) {
    ModelMetrics* mm = model_metrics.at(model);
    if (waiting != 0) mm->AddRequestsWaiting(waiting);
    if (running != 0) mm->AddRequestsRunning(running);
  };
  // The pool outlives the service: its engines may be mid-step until they are destroyed.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = config.threads > 0 ? static_cast<int>(config.threads) : cores;
  if (threads > cores) {
    // More compute threads than cores only makes them wait for each other.
    std::cerr << "tierserve: warning: server.threads is " << threads << " but this machine has "
              << cores << " cores; using " << cores << std::endl;
    threads = cores;
  }
  ThreadPool pool(threads);
  // The models, key check, metrics and shutdown state the gRPC front ends share.
  ServingContext serving(observer);
  serving.set_max_unread_stream_bytes(
      static_cast<size_t>(std::max<int64_t>(1, absl::GetFlag(FLAGS_testing_max_unread_stream_bytes))));
  // Registered before the server listens: a request for a configured model
  // that arrives while it loads is UNAVAILABLE, never NOT_FOUND.
  for (const ModelServingConfig& m : config.models) {
    serving.models().AddLoading(m.name, m.max_sequence_length.value_or(0), m.max_batch_size,
                                m.parse_special_tokens_in_chat);
  }
  GenerationService service(&serving);
  // KServe v2 / Triton's inference protocol: its liveness and readiness
  // probes are open or keyed as the health service is.
  KServeService kserve(&serving, KServeService::Options{security->health_open, TIERSERVE_VERSION, &statistics});

  // Health is served by HealthService, under the key check unless open.
  grpc::EnableDefaultHealthCheckService(false);
  HealthService health(security->health_open ? HealthService::Authorize()
                                             : [sec = *security](const grpc::CallbackServerContext& ctx) {
                                                 return sec.Authorize(ctx);
                                               });
  for (const char* name : {"", kServiceName, kKServeServiceName}) health.SetServing(name, false);
  // gRPC's reflection service cannot be put under the key check: with API
  // keys it is served only when server.open_services lists it. (Linking the
  // reflection library registers its plugin with every builder; the option
  // takes it out again.)
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  google::protobuf::SetLogHandler(&RateLimitedProtobufLog);
  if (security->api_keys != nullptr) {
    serving.set_authorize([sec = *security](const grpc::ServerContextBase& ctx) { return sec.Authorize(ctx); });
  }
  grpc::ServerBuilder builder;
  int port = 0;
  // gRPC turns SO_REUSEPORT on by default, which lets a second daemon bind
  // the same port and take half the new connections: refuse that instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(config.max_streams_per_connection));
  builder.AddListeningPort(config.listen, security->credentials, &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config.max_message_bytes));
  builder.RegisterService(&service);
  builder.RegisterService(&kserve);
  builder.RegisterService(&health);
  if (!security->reflection_open) builder.SetOption(std::make_unique<WithoutReflection>());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen,
                                                    " (server.listen): the address is in use or invalid")));
  }
  std::cerr << "tierserve: listening on " << config.listen << " (port " << port << ")";
  if (!config.metrics_listen.empty()) std::cerr << ", metrics on port " << metrics.listening_port();
  std::cerr << std::endl;
  std::cerr << "tierserve: " << DescribeSecurity(*security) << std::endl;

  if (absl::GetFlag(FLAGS_testing_load_delay_ms) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_testing_load_delay_ms)));
  }
  if (absl::StatusOr<int64_t> rss = ReadResidentMemoryBytes("/proc/self/statm"); rss.ok()) {
    std::cerr << "tierserve: resident memory before loading models: " << *rss << " bytes"
              << std::endl;
  }
  // Bytes of the models' offload files (their disk modules), added as each loads.
  auto disk_bytes = std::make_shared<std::atomic<int64_t>>(0);
  metrics.AddCollectable(std::make_shared<DeviceMemoryCollector>([&devices, disk_bytes] {
    std::vector<DeviceMemoryReading> readings;
    for (Device* d : devices.All()) {
      const MemoryUsage u = d->usage();
      DeviceMemoryReading r{d->name(), {}, u.capacity};
      for (int k = 0; k < kMemoryKinds; ++k) {
        r.by_kind.emplace_back(MemoryKindName(static_cast<MemoryKind>(k)), u.bytes[k]);
      }
      if (d->kind() == DeviceKind::kCpu) {
        // The host is shared with other processes: its RAM (or the cgroup's
        // limit) and what is left of it, not this process' allocations. A
        // failed read leaves both out of the scrape.
        if (const absl::StatusOr<HostMemory> host = ReadHostMemory(); host.ok()) {
          r.capacity = host->total;
          r.free = host->available;
        } else {
          r.capacity = -1;
        }
      } else if (u.capacity >= 0) {
        r.free = std::max<int64_t>(0, u.capacity - u.total());
      }
      readings.push_back(std::move(r));
    }
    // The offload files: the disk modules of every model, written at load.
    readings.push_back(DeviceMemoryReading{"disk", {{"weights", disk_bytes->load()}}, -1});
    return readings;
  }));
  // A model that cannot be made to serve stops the daemon: marked failed, the
  // listener shut, and one line naming the config key (`key`, after the model's
  // own path; empty: the status says it already).
  auto fail_model = [&](const ModelServingConfig& m, const absl::Status& status, absl::string_view key) {
    load_state->SetState(m.name, ModelState::kFailed);
    serving.models().SetFailed(m.name, std::string(status.message()));
    server->Shutdown();
    return Fail(key.empty() ? status
                            : absl::Status(status.code(), absl::StrCat(m.key_path, key, ": ", status.message())));
  };
  for (const ModelServingConfig& m : config.models) {
    ModelLoadOptions load_options;
    load_options.devices = &devices;
    load_options.prefetch_depth = static_cast<int>(m.prefetch_depth);
    load_options.quantization = m.quantization;
    load_options.device_map = m.device_map;
    load_options.pool = &pool;
    load_options.offload_path = OffloadPath(m);
    load_options.activations = m.activation_precision;
    LoadProgressPrinter progress(&std::cerr, absl::StrCat("tierserve: model ", m.name, ": "),
                                 LoadProgressPrinter::Style::kLog);
    load_options.on_progress = [&progress](const LoadProgress& p) { progress.Report(p); };
    const auto load_start = std::chrono::steady_clock::now();
    absl::StatusOr<LoadedModel> loaded = LoadModel(m.path, load_options);
    if (!loaded.ok()) return fail_model(m, loaded.status(), ".path");
    for (const std::string& w : loaded->warnings) {
      std::cerr << "tierserve: warning: " << m.key_path << ".quantization." << w << std::endl;
    }
    std::map<std::string, int64_t> bytes_by_device;
    for (const MemoryLine& line : MemoryByPrecision(loaded->modules)) {
      std::cerr << "tierserve: model " << m.name << ": " << line.device << " "
                << PrecisionName(line.precision) << ": " << line.parameters << " parameters, "
                << line.bytes << " bytes" << std::endl;
      bytes_by_device[line.device] += line.bytes;
    }
    for (const auto& [device, bytes] : bytes_by_device) {
      model_metrics.at(m.name)->SetWeightBytes(device, bytes);
    }
    if (auto it = bytes_by_device.find("disk"); it != bytes_by_device.end()) disk_bytes->fetch_add(it->second);
    // Where the math runs: the staging pool and the KV blocks live there.
    const Location execution = ExecutionLocation(m.device_map);
    Device* execution_device =
        execution.tier == Location::Tier::kSim ? devices.Sim(execution.index) : devices.host();
    const Streamer& streamer = loaded->model->streamer();
    if (const int64_t staging = streamer.staging_bytes(); staging > 0) {
      std::cerr << "tierserve: model " << m.name << ": "
                << (bytes_by_device.contains("disk") ? "disk modules in " + load_options.offload_path + ","
                                                     : "offloaded modules")
                << " streamed through a staging pool of " << staging << " bytes (prefetch depth "
                << load_options.prefetch_depth << "): " << streamer.staging_bytes(execution_device)
                << " bytes on " << execution_device->name();
      if (execution_device != devices.host()) {
        std::cerr << ", " << streamer.staging_bytes(devices.host()) << " bytes on " << devices.host()->name();
      }
      std::cerr << std::endl;
    }
    absl::StatusOr<Engine::Options> options = EngineOptionsFor(m, config, *loaded->model);
    if (!options.ok()) return fail_model(m, options.status(), "");
    // The streamer's counters are plain fields written by the forward, on the
    // engine's worker thread: they are copied there, after each step, and the
    // scrape reads the copy.
    offload->AddModel(m.name, loaded->execution_device);
    const CausalLM* model = loaded->model.get();
    offload->Publish(m.name, OffloadSnapshotOf(model->streamer().stats()));
    options->on_step = [mm = model_metrics.at(m.name), offload, model, name = m.name,
                        &statistics](const StepStats& s) {
      offload->Publish(name, OffloadSnapshotOf(model->streamer().stats()));
      statistics.StepRan(name, s.sequences, s.seconds, s.queue_seconds);
      // The batch-size and step-token histograms count forwards; a step that
      // ran none (every sequence paused, or the last ones cancelled) is not one.
      if (s.sequences > 0) mm->RecordStep(s.sequences, s.tokens);
      mm->SetKvCacheBlocks(s.kv_used_blocks, s.kv_cached_blocks, s.kv_total_blocks);
      mm->AddPrefixCache(s.prefix_query_tokens, s.prefix_hit_tokens);
      mm->AddPreemptions(s.preempted);
      mm->SetRequestsPaused(s.paused);
      for (double t : s.queue_seconds) mm->RecordQueueTime(t);
      for (double t : s.prefill_seconds) mm->RecordPrefillTime(t);
      for (double t : s.inter_token_seconds) mm->RecordInterTokenLatency(t);
    };
    options->on_fault = [&serving, load_state, name = m.name](const absl::Status& s) {
      load_state->SetState(name, ModelState::kFailed);
      std::cerr << "tierserve: model " << name << " stopped serving: " << s.message() << std::endl;
      serving.models().SetFailed(name, absl::StrCat(s.message(), "; restart the daemon to rewrite it"));
    };
    // The KV blocks live on the execution device, which counts them (kind kv).
    const int64_t kv_bytes = Engine::KvStorageBytes(*loaded->model, *options);
    absl::StatusOr<Buffer> kv = execution_device->Allocate(kv_bytes, MemoryKind::kKv);
    if (!kv.ok()) return fail_model(m, kv.status(), ".kv_cache_bytes");
    options->kv_storage = std::make_shared<Buffer>(std::move(*kv));
    model_metrics.at(m.name)->SetKvCacheBlocks(0, 0, options->kv_blocks);
    std::cerr << "tierserve: model " << m.name << ": KV cache " << options->kv_blocks << " blocks of "
              << options->kv_block_tokens << " tokens, " << KvCacheDtypeName(options->kv_dtype) << ", " << kv_bytes
              << " bytes on " << execution_device->name()
              << "; up to " << options->max_batch_size << " sequences and " << options->max_step_tokens
              << " tokens per step" << std::endl;
    auto engine = std::make_unique<Engine>(std::move(*loaded), *options);
    load_state->SetLoadSeconds(
        m.name, std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());
    // Before the engine takes requests, so that a fault (on_fault) is never overwritten.
    load_state->SetState(m.name, ModelState::kServing);
    serving.models().SetReady(m.name, std::move(engine));
    std::cerr << "tierserve: model " << m.name << " loaded" << std::endl;
  }
  for (const char* name : {"", kServiceName, kKServeServiceName}) health.SetServing(name, true);
  std::cerr << "tierserve: serving" << std::endl;
  // Returns the heap's free pages while serving (HTTP/2 rapid reset).
  HeapTrimmer trimmer(kHeapTrimInterval);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::cerr << "tierserve: " << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": draining (grace " << config.shutdown_grace_seconds << " s); a second signal "
            << "stops at once" << std::endl;
  // A second SIGTERM or SIGINT while draining ends the process at once.
  std::thread([signals] {
    int second = 0;
    sigwait(&signals, &second);
    std::cerr << "tierserve: second " << (second == SIGTERM ? "SIGTERM" : "SIGINT")
              << ": stopping without draining" << std::endl;
    std::_Exit(1);
  }).detach();
  for (const char* name : {"", kServiceName, kKServeServiceName}) health.SetServing(name, false);
  serving.Drain();  // new work now fails with UNAVAILABLE
  // Let the calls in flight end by themselves within the grace period, then
  // give clients a moment to read their last frames: gRPC closes a connection
  // as soon as its calls are done, and a close with unread client frames (RST)
  // makes the client drop what it had not read yet.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(config.shutdown_grace_seconds);
  auto wait_calls = [&](std::chrono::system_clock::time_point until) {
    while (serving.ActiveCalls() > 0 && std::chrono::system_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  wait_calls(deadline);
  if (serving.ActiveCalls() > 0) {
    // Past the grace period: the work still running ends at its next step
    // and its calls fail with UNAVAILABLE.
    std::cerr << "tierserve: grace period over; ending " << serving.ActiveCalls() << " calls" << std::endl;
    serving.AbortAll();
    wait_calls(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  health.Shutdown();  // ends Watch calls, which never end by themselves
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  std::cerr << "tierserve: stopped" << std::endl;
  return 0;
}

}  // namespace tierserve
