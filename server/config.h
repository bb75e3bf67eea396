// The daemon's configuration: one YAML file (deploy/tierserve.yaml is the
// default), with command-line flags applied on top.
//
//   server:
//     listen: 0.0.0.0:50051        # gRPC, host:port (host: name, IPv4 or [IPv6])
//     metrics_listen: 0.0.0.0:9464 # Prometheus /metrics, host:port
//     max_queued_requests: 256     # 1..1000000; past this: RESOURCE_EXHAUSTED
//     max_message_bytes: 4MiB      # gRPC message limit both ways, 1 B..2 GiB-1; default 4 MiB
//     shutdown_grace_seconds: 30   # 0..3600; in-flight requests may finish this long
//     threads: 0                   # 0..1024 compute threads; 0 = one per core
//     sim_device:                  # every simulated accelerator sim:N
//       memory: 2GiB               # its capacity; what does not fit fails at load
//       link_bandwidth: 16GB       # bytes per second host -> device (a size per second)
//       link_latency_us: 10        # per copy, >= 0
//   models:                        # at least one (or --model on the command line)
//     - name: smollm2              # unique; letters, digits and . _ - / :
//       path: models/x.gguf        # a .gguf file or a HF model folder (config.json);
//                                  # relative paths resolve against the working directory
//       quantization:              # optional; mirrors transformers' BitsAndBytesConfig
//         load_in_8bit: false      # LLM.int8 for the linear layers
//         load_in_4bit: false      # at most one of the two; the keys below are
//                                  # errors unless one is true
//         llm_int8_threshold: 6.0  # outlier threshold, >= 0; 0 turns the outlier split off (8-bit)
//         llm_int8_skip_modules: [lm_head]  # module-path prefixes kept unquantized; default: lm_head
//         llm_int8_enable_fp32_cpu_offload: false  # modules on disk stay fp32, not quantized
//         llm_int8_has_fp16_weight: false  # accepted; inference numbers are the same
//         bnb_4bit_quant_type: fp4 # nf4 | fp4 (used by 4-bit; default fp4 as in transformers)
//         bnb_4bit_use_double_quant: false  # (used by 4-bit)
//         bnb_4bit_compute_dtype: fp32      # fp32 | fp16 | bf16 (used by 4-bit)
//         bnb_4bit_quant_storage: uint8     # uint8 | int8 | fp16 | bf16 | fp32: a view of the same bytes
//       device_map: {"": cpu}      # or auto | balanced | sequential (planned from max_memory, see
//                                  # runtime/placement/plan.h); see runtime/placement/device_map.h.
//                                  # Default: everything on cpu. A value {device: cpu, precision: P}
//                                  # sets the precision of the linear layers under the key: fp32,
//                                  # int8, nf4 or fp4.
//       max_memory: {sim:0: 2GiB, cpu: 8GiB}  # budgets per device: auto plans within them (an
//                                  # accelerator not named is not used; with none named and
//                                  # accelerator: sim, sim:0 with its capacity), and an explicit
//                                  # map is checked against them at start-up. A sim budget is
//                                  # capped at the sim capacity; cpu unnamed: unbounded.
//       offload_folder: /var/lib/tierserve/offload  # where modules placed on disk are written
//                                  # (<folder>/<name>.offload, made at each start); made if missing
//       max_batch_size: 8          # 1..4096; sequences decoded together (continuous batching),
//                                  # and the most prompts per Generate call; default 8
//       max_sequence_length: 2048  # 1..1048576 tokens; default: the model's context length
//       max_batch_tokens: 512      # 1..1048576; tokens computed per engine step, all sequences
//                                  # together: long prompts are prefilled in chunks of what is left
//       kv_cache_bytes: 1GiB       # the KV cache pool, at most the machine's memory and at least
//                                  # one sequence of max_sequence_length; default: max_batch_size
//                                  # such sequences, capped at half the machine's memory
//       kv_block_tokens: 16        # 1..1024 tokens per KV block (the prefix-cache granularity)
//       kv_cache_dtype: fp32       # fp32 | fp16: what the KV cache stores; fp16 halves its
//                                  # memory and what long contexts read per token (llama.cpp's
//                                  # default cache type), rounding keys and values to fp16
//       prefix_caching: true       # reuse the KV blocks of prompt prefixes computed before
//       accelerator: cuda          # cuda | sim: with sim, cuda:N and bare GPU indices in the
//                                  # device map mean sim:N, so a GPU map runs on a machine
//                                  # without one (flag: --accelerator)
//       prefetch_depth: 2          # 0..64 offloaded layers staged ahead of the one in use
//       activation_precision: fp32 # fp32 | int8: what GGUF block weights (Q4_0, Q4_1, Q8_0
//                                  # as stored) multiply; int8 quantizes activations per 32
//                                  # columns, as llama.cpp does (not with quantization:)
//       parse_special_tokens_in_chat: false  # special tokens typed in chat message contents
//                                  # (<|im_start|>, ...) are plain text; true matches them
//
// Every key is checked: an unknown key, a wrong type, a value out of range, a
// duplicate name or a missing model file is an error of one line,
// `<file>: <key path>: <what was wrong>; <what is allowed>`.
//
// At start-up: LoadServerConfig, then ApplyFlagOverrides, then
// CheckServable and PlanModel (server/model_plan.h, which checks the device map
// covers the model) for each model; on any error print its message
// and exit non-zero before listening.
#ifndef TIERSERVE_SERVER_CONFIG_H_
#define TIERSERVE_SERVER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/common/dtype.h"
#include "runtime/placement/device_map.h"
#include "runtime/placement/quantization_config.h"

namespace tierserve {

class WeightSource;

// One model the daemon serves.
struct ModelServingConfig {
  std::string name;
  std::string path;  // as written; relative paths resolve against the working directory
  QuantizationConfig quantization;
  DeviceMap device_map;
  std::vector<std::pair<Location, int64_t>> max_memory;  // bytes per device, in file order
  std::string offload_folder;                          // "" when not set
  int64_t max_batch_size = 8;
  std::optional<int64_t> max_sequence_length;  // unset: the model's context length
  int64_t max_batch_tokens = 512;
  std::optional<int64_t> kv_cache_bytes;  // unset: max_batch_size sequences of max_sequence_length
  std::string kv_cache_bytes_key;         // its key path, for messages
  int64_t kv_block_tokens = 16;
  DType kv_cache_dtype = DType::kF32;  // kF32 or kF16
  bool prefix_caching = true;
  bool parse_special_tokens_in_chat = false;
  // "cuda" or "sim": what bare GPU indices and cuda:N placements mean.
  std::string accelerator = "cuda";
  int64_t prefetch_depth = 2;  // offloaded layers staged ahead of the one in use
  ActivationPrecision activation_precision = ActivationPrecision::kFp32;
  // Where it was defined, for messages: "models[0]", or "--model".
  std::string key_path;
};

// server.tls: TLS on the gRPC port.
struct TlsSettings {
  std::string cert_file;       // PEM certificate chain the server presents
  std::string key_file;        // its PEM private key
  std::string client_ca_file;  // "" : no client certificates; else mutual TLS
};

// server.metrics_auth: HTTP basic authentication on /metrics.
struct MetricsAuthSettings {
  std::string username;
  std::string password_file;  // the password is the file's first line
};

// The gRPC services that may be asked without an API key (server.open_services).
inline constexpr char kOpenServiceHealth[] = "health";
inline constexpr char kOpenServiceReflection[] = "reflection";

struct ServerConfig {
  // The config file, for messages; "" when the config comes from flags only.
  std::string source;
  std::string listen = "0.0.0.0:50051";
  std::string metrics_listen = "0.0.0.0:9464";
  int64_t max_queued_requests = 256;
  int64_t max_message_bytes = 4 << 20;
  int64_t shutdown_grace_seconds = 30;
  int64_t threads = 0;  // 0: one per core
  // HTTP/2 streams one connection may have open at once.
  int64_t max_streams_per_connection = 256;
  std::optional<TlsSettings> tls;
  // "" : every call is answered without a key.
  std::string api_keys_file;
  // With api_keys_file: services answered without a key.
  std::vector<std::string> open_services = {kOpenServiceHealth};
  std::optional<MetricsAuthSettings> metrics_auth;
  // Every sim:N device: memory capacity, link bandwidth and latency.
  int64_t sim_memory_bytes = int64_t{2} << 30;
  int64_t sim_link_bytes_per_second = 16'000'000'000;
  double sim_link_latency_us = 10;
  std::vector<ModelServingConfig> models;
};

// Parses a config file's text; `source_name` starts every error message.
// A file without models is accepted here: --model may supply one (see
// ApplyFlagOverrides).
absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view yaml_text,
                                               const std::string& source_name);
// Parses a `quantization` section given on its own as YAML text (the
// generate command builds one from its flags), with the rules of the config
// file; `source_name` starts every error message. Empty text: no quantization.
absl::StatusOr<QuantizationConfig> ParseQuantizationConfig(std::string_view yaml_text,
                                                           const std::string& source_name);
// Reads and parses the file at `path` (at most 1 MiB).
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

// Command-line values that replace the file's.
struct FlagOverrides {
  std::optional<std::string> listen;
  std::optional<std::string> metrics_listen;
  std::optional<int64_t> max_queued_requests;
  std::optional<int64_t> threads;
  // --accelerator: every model's accelerator.
  std::optional<std::string> accelerator;
  // --model PATH: when the file lists no models, serves this one alone, named
  // after the file stem (models/SmolLM2.Q4_1.gguf -> SmolLM2.Q4_1), on the cpu.
  std::optional<std::string> model;
};

// Applies `flags` to `config` with the file's rules (errors name the flag),
// then checks at least one model is configured. Call it once after loading,
// even with no flags set.
absl::Status ApplyFlagOverrides(ServerConfig* config, const FlagOverrides& flags);

// Opens the model file(s) of `model` (headers only) and checks its device map
// places every tensor and that every key of the map matches some tensor.
// Errors start with `source` (the config file) and name the key path.
absl::Status CheckDeviceMapCoversModel(const ModelServingConfig& model, const std::string& source);
// The same check on `weights`, the model's files already open.
absl::Status CheckDeviceMapCoversModel(const ModelServingConfig& model, const WeightSource& weights,
                                       const std::string& source);

// Fails, naming the key path, for what the config may say but this build
// cannot serve yet — cuda:N placements and budgets (the CUDA execution path),
// explicit per-module precisions other than fp32, int8, nf4 and fp4 — for a
// disk budget, and for a disk placement without an offload_folder. Makes
// the offload_folder if missing and proves it writable. Nothing is guessed
// silently.
absl::Status CheckServable(const ModelServingConfig& model, const std::string& source);

// <offload_folder>/<name>.offload ('/' and ':' of the name as '_'), or ""
// without an offload_folder: the file the model's disk modules go to.
std::string OffloadPath(const ModelServingConfig& model);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_CONFIG_H_
