#include "server/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "runtime/base/status_macros.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/quant/quantize_weight.h"
#include "server/device_map_config.h"
#include "runtime/model/weight_source.h"
#include "server/config_node.h"
#include "server/small_file.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"

namespace tierserve {

namespace {

// Limits that the file and the flags share.
constexpr int64_t kMaxQueuedRequests = 1'000'000;
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxGraceSeconds = 3600;
constexpr int64_t kMaxBatchSize = 4096;
constexpr int64_t kMaxSequenceLength = 1 << 20;
constexpr int64_t kMaxBatchTokens = 1 << 20;
constexpr int64_t kMaxKvBlockTokens = 1024;
constexpr int64_t kMaxMessageBytes = std::numeric_limits<int32_t>::max();  // gRPC takes an int
constexpr int64_t kMaxConfigFileBytes = 1 << 20;
constexpr size_t kMaxModelNameLength = 128;

const std::vector<std::string> kTopKeys = {"server", "models"};
const std::vector<std::string> kServerKeys = {"listen",
                                              "metrics_listen",
                                              "max_queued_requests",
                                              "max_message_bytes",
                                              "shutdown_grace_seconds",
                                              "threads",
                                              "sim_device",
                                              "max_streams_per_connection",
                                              "tls",
                                              "api_keys_file",
                                              "open_services",
                                              "metrics_auth"};
const std::vector<std::string> kTlsKeys = {"cert_file", "key_file", "client_ca_file"};
const std::vector<std::string> kMetricsAuthKeys = {"username", "password_file"};
constexpr int64_t kMaxStreamsPerConnection = 1 << 20;
const std::vector<std::string> kSimDeviceKeys = {"memory", "link_bandwidth", "link_latency_us"};
const std::vector<std::string> kModelKeys = {
    "name",       "path",           "quantization",   "device_map",
    "max_memory", "offload_folder", "max_batch_size", "max_sequence_length",
    "max_batch_tokens", "kv_cache_bytes", "kv_block_tokens", "kv_cache_dtype", "prefix_caching",
    "parse_special_tokens_in_chat", "accelerator", "prefetch_depth", "activation_precision"};
constexpr int64_t kMaxPrefetchDepth = 64;
constexpr char kAcceleratorForms[] = "expected cuda or sim";
const std::vector<std::string> kQuantizationKeys = {
    "load_in_8bit",
    "load_in_4bit",
    "llm_int8_threshold",
    "llm_int8_skip_modules",
    "llm_int8_enable_fp32_cpu_offload",
    "llm_int8_has_fp16_weight",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
    "bnb_4bit_compute_dtype",
    "bnb_4bit_quant_storage"};

constexpr char kHostPortForms[] =
    "expected host:port with a host name, an IPv4 address or an [IPv6] address, and a port from "
    "0 to 65535 (0: any free port, which the daemon logs), like 0.0.0.0:50051";
constexpr char kModelNameForms[] =
    "expected 1 to 128 letters, digits and . _ - / :, starting with a letter or digit";
constexpr char kModelPathForms[] = "expected a .gguf file or a HF model folder with config.json";

bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label)
      if (!absl::ascii_isalnum(c) && c != '-') return false;
  }
  return true;
}

// The port of a valid host:port address, or std::nullopt.
std::optional<int> PortOf(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  const absl::string_view host = address.substr(0, colon);
  const absl::string_view port = address.substr(colon + 1);
  bool host_ok = false;
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]") && host.size() > 2) {
    in6_addr v6;
    host_ok = inet_pton(AF_INET6, std::string(host.substr(1, host.size() - 2)).c_str(), &v6) == 1;
  } else if (!host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
               return absl::ascii_isdigit(c) || c == '.';
             })) {
    in_addr v4;
    host_ok = inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1;
  } else {
    host_ok = IsHostName(host);
  }
  int p = 0;
  const bool port_ok =
      !port.empty() && port.size() <= 5 && (port[0] != '0' || port == "0") &&
      std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); }) &&
      absl::SimpleAtoi(port, &p) && p >= 0 && p <= 65535;
  if (!host_ok || !port_ok) return std::nullopt;
  return p;
}

bool IsWildcardHost(absl::string_view address) {
  return absl::StartsWith(address, "0.0.0.0:") || absl::StartsWith(address, "[::]:");
}

// The two servers cannot bind the same port on overlapping addresses.
bool AddressesClash(const std::string& a, const std::string& b) {
  // Port 0 asks the kernel for a free port: two such never clash.
  if (PortOf(a) != PortOf(b) || PortOf(a) == 0) return false;
  return a == b || IsWildcardHost(a) || IsWildcardHost(b);
}

bool IsModelName(absl::string_view name) {
  return !name.empty() && name.size() <= kMaxModelNameLength && absl::ascii_isalnum(name[0]) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/' ||
                  c == ':';
         });
}

// What is wrong with a model path, or std::nullopt when it names a GGUF file
// or a HF model folder.
std::optional<std::string> ModelPathProblem(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string where;
    if (!absl::StartsWith(path, "/")) {
      std::error_code ec;
      const std::filesystem::path cwd = std::filesystem::current_path(ec);
      where = absl::StrCat(" (relative paths resolve against the working directory ",
                           ec ? std::string("?") : cwd.string(), ")");
    }
    if (err == ENOENT || err == ENOTDIR) {
      return absl::StrCat("no such file or directory: ", path, "; ", kModelPathForms, where);
    }
    return absl::StrCat(path, ": ", std::strerror(err), "; ", kModelPathForms, where);
  }
  if (S_ISDIR(st.st_mode)) {
    struct stat cfg;
    if (stat((path + "/config.json").c_str(), &cfg) != 0 || !S_ISREG(cfg.st_mode)) {
      return absl::StrCat(path, " is a folder without config.json; ", kModelPathForms);
    }
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode))
    return absl::StrCat(path, " is neither a file nor a folder; ", kModelPathForms);
  if (!absl::EndsWith(path, ".gguf"))
    return absl::StrCat(path, " is not a .gguf file; ", kModelPathForms);
  return std::nullopt;
}

// server.tls, server.api_keys_file, server.open_services, server.metrics_auth.
// Only paths are read here; the files are read when the daemon starts.
absl::Status ReadSecurity(const ConfigNode& node, ServerConfig* config) {
  if (std::optional<ConfigNode> tls = node.Get("tls")) {
    TS_RETURN_IF_ERROR(tls->CheckMap(kTlsKeys, "a map with cert_file, key_file and client_ca_file"));
    TlsSettings t;
    for (auto [key, field] : {std::pair<const char*, std::string*>{"cert_file", &t.cert_file},
                              {"key_file", &t.key_file}}) {
      std::optional<ConfigNode> v = tls->Get(key);
      if (!v.has_value()) {
        return tls->Error(absl::StrCat("has no ", key, "; expected cert_file and key_file (PEM files)"));
      }
      TS_ASSIGN_OR_RETURN(*field, v->String("the path of a PEM file"));
    }
    if (std::optional<ConfigNode> v = tls->Get("client_ca_file")) {
      TS_ASSIGN_OR_RETURN(t.client_ca_file, v->String("the path of a PEM CA certificate"));
    }
    config->tls = std::move(t);
  }
  if (std::optional<ConfigNode> v = node.Get("api_keys_file")) {
    TS_ASSIGN_OR_RETURN(config->api_keys_file, v->String("the path of a file of API keys"));
  }
  if (std::optional<ConfigNode> v = node.Get("open_services")) {
    if (config->api_keys_file.empty()) {
      return v->Error("has no effect without api_keys_file (every service is open); set "
                      "api_keys_file or remove it");
    }
    TS_ASSIGN_OR_RETURN(std::vector<ConfigNode> items, v->Items("a list of health and reflection"));
    config->open_services.clear();
    for (const ConfigNode& item : items) {
      TS_ASSIGN_OR_RETURN(std::string name, item.OneOf({kOpenServiceHealth, kOpenServiceReflection}));
      config->open_services.push_back(name);
    }
  }
  if (std::optional<ConfigNode> auth = node.Get("metrics_auth")) {
    TS_RETURN_IF_ERROR(auth->CheckMap(kMetricsAuthKeys, "a map with username and password_file"));
    MetricsAuthSettings m;
    std::optional<ConfigNode> user = auth->Get("username");
    std::optional<ConfigNode> password = auth->Get("password_file");
    if (!user.has_value() || !password.has_value()) {
      return auth->Error("expected both username and password_file");
    }
    TS_ASSIGN_OR_RETURN(m.username, user->String("a user name"));
    if (m.username.empty() || m.username.find(':') != std::string::npos) {
      return user->Error("expected a non-empty user name without ':'");
    }
    TS_ASSIGN_OR_RETURN(m.password_file, password->String("the path of a file holding the password"));
    config->metrics_auth = std::move(m);
  }
  return absl::OkStatus();
}

absl::Status ReadServer(const ConfigNode& node, ServerConfig* config) {
  TS_RETURN_IF_ERROR(node.CheckMap(kServerKeys, "a map of server settings"));
  for (auto [key, field] : {std::pair<const char*, std::string*>{"listen", &config->listen},
                            {"metrics_listen", &config->metrics_listen}}) {
    std::optional<ConfigNode> v = node.Get(key);
    if (!v.has_value()) continue;
    TS_ASSIGN_OR_RETURN(*field, v->String("host:port"));
    if (!PortOf(*field).has_value()) {
      return v->Error(absl::StrCat(v->Describe(), " is not host:port; ", kHostPortForms));
    }
  }
  if (AddressesClash(config->listen, config->metrics_listen)) {
    return ConfigError(node.source(), ChildKeyPath(node.key_path(), "metrics_listen"),
                       absl::StrCat("\"", config->metrics_listen, "\" overlaps listen (\"",
                                    config->listen, "\"); expected a different port"));
  }
  if (std::optional<ConfigNode> v = node.Get("max_queued_requests")) {
    TS_ASSIGN_OR_RETURN(config->max_queued_requests, v->Int(1, kMaxQueuedRequests));
  }
  if (std::optional<ConfigNode> v = node.Get("max_message_bytes")) {
    TS_ASSIGN_OR_RETURN(config->max_message_bytes, v->ByteSize(1, kMaxMessageBytes));
  }
  if (std::optional<ConfigNode> v = node.Get("shutdown_grace_seconds")) {
    TS_ASSIGN_OR_RETURN(config->shutdown_grace_seconds, v->Int(0, kMaxGraceSeconds));
  }
  if (std::optional<ConfigNode> v = node.Get("threads")) {
    TS_ASSIGN_OR_RETURN(config->threads, v->Int(0, kMaxThreads));
  }
  if (std::optional<ConfigNode> v = node.Get("max_streams_per_connection")) {
    TS_ASSIGN_OR_RETURN(config->max_streams_per_connection, v->Int(1, kMaxStreamsPerConnection));
  }
  TS_RETURN_IF_ERROR(ReadSecurity(node, config));
  if (std::optional<ConfigNode> sim = node.Get("sim_device")) {
    TS_RETURN_IF_ERROR(sim->CheckMap(kSimDeviceKeys, "a map of simulated device settings"));
    if (std::optional<ConfigNode> v = sim->Get("memory")) {
      TS_ASSIGN_OR_RETURN(config->sim_memory_bytes,
                          v->ByteSize(1, std::numeric_limits<int64_t>::max()));
    }
    if (std::optional<ConfigNode> v = sim->Get("link_bandwidth")) {
      TS_ASSIGN_OR_RETURN(config->sim_link_bytes_per_second,
                          v->ByteSize(1, std::numeric_limits<int64_t>::max()));
    }
    if (std::optional<ConfigNode> v = sim->Get("link_latency_us")) {
      TS_ASSIGN_OR_RETURN(config->sim_link_latency_us, v->NonNegativeDouble());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<QuantizationConfig> ReadQuantization(const ConfigNode& node) {
  TS_RETURN_IF_ERROR(node.CheckMap(kQuantizationKeys, "a map of quantization settings"));
  QuantizationConfig q;
  if (std::optional<ConfigNode> v = node.Get("load_in_8bit")) {
    TS_ASSIGN_OR_RETURN(q.load_in_8bit, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("load_in_4bit")) {
    TS_ASSIGN_OR_RETURN(q.load_in_4bit, v->Bool());
  }
  if (q.load_in_8bit && q.load_in_4bit) {
    return node.Error("load_in_8bit and load_in_4bit are both true; expected at most one of them");
  }
  // Without either mode every other key does nothing, which is most likely a
  // forgotten load_in_* rather than an intent: say so. With a mode on, the
  // other mode's keys are accepted, as transformers does.
  const bool quantized = q.load_in_8bit || q.load_in_4bit;
  auto requires_mode = [&](const ConfigNode& v) -> absl::Status {
    if (quantized) return absl::OkStatus();
    return v.Error(
        "has no effect without load_in_8bit: true or load_in_4bit: true; set one of them or remove "
        "it");
  };
  if (std::optional<ConfigNode> v = node.Get("llm_int8_threshold")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    absl::StatusOr<double> t = v->NonNegativeDouble();
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(t.status().message(), " (0 turns the outlier split off)"));
    q.llm_int8_threshold = *t;
  }
  if (std::optional<ConfigNode> v = node.Get("llm_int8_skip_modules")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(std::vector<ConfigNode> items, v->Items("a list of module paths"));
    q.llm_int8_skip_modules.emplace();
    for (const ConfigNode& item : items) {
      TS_ASSIGN_OR_RETURN(std::string module, item.String("a module path like lm_head"));
      q.llm_int8_skip_modules->push_back(std::move(module));
    }
  }
  if (std::optional<ConfigNode> v = node.Get("llm_int8_enable_fp32_cpu_offload")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(q.llm_int8_enable_fp32_cpu_offload, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("llm_int8_has_fp16_weight")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(q.llm_int8_has_fp16_weight, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("bnb_4bit_quant_type")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(const std::string t, v->OneOf({"nf4", "fp4"}));
    q.bnb_4bit_quant_type =
        t == "nf4" ? QuantizationConfig::QuantType::kNf4 : QuantizationConfig::QuantType::kFp4;
  }
  if (std::optional<ConfigNode> v = node.Get("bnb_4bit_use_double_quant")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(q.bnb_4bit_use_double_quant, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("bnb_4bit_compute_dtype")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(const std::string t, v->OneOf({"fp32", "fp16", "bf16"}));
    q.bnb_4bit_compute_dtype = t == "fp32"   ? ComputeDType::kFp32
                               : t == "fp16" ? ComputeDType::kFp16
                                             : ComputeDType::kBf16;
  }
  if (std::optional<ConfigNode> v = node.Get("bnb_4bit_quant_storage")) {
    TS_RETURN_IF_ERROR(requires_mode(*v));
    TS_ASSIGN_OR_RETURN(q.bnb_4bit_quant_storage, v->OneOf({"uint8", "int8", "fp16", "bf16", "fp32"}));
  }
  return q;
}

absl::StatusOr<std::vector<std::pair<Location, int64_t>>> ReadMaxMemory(const ConfigNode& node) {
  std::vector<std::pair<Location, int64_t>> out;
  TS_RETURN_IF_ERROR(node.ForEachEntry(
      "a map from device to size, like {cuda:0: 2GiB, cpu: 8GiB}",
      [&](const std::string& key, const ConfigNode& value) -> absl::Status {
        std::optional<Location> d = ParseLocation(key);
        if (!d.has_value()) {
          return value.Error(absl::StrCat("\"", absl::CHexEscape(key),
                                          "\" is not a device; expected ", kDeviceForms));
        }
        for (const auto& [seen, bytes] : out) {
          if (seen == *d) {
            return value.Error(
                absl::StrCat("names ", d->ToString(), " a second time; expected each device once"));
          }
        }
        TS_ASSIGN_OR_RETURN(const int64_t bytes,
                            value.ByteSize(0, std::numeric_limits<int64_t>::max()));
        out.emplace_back(*d, bytes);
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<ModelServingConfig> ReadModel(const ConfigNode& node) {
  TS_RETURN_IF_ERROR(node.CheckMap(kModelKeys, "a map describing a model (name, path, ...)"));
  ModelServingConfig m;
  m.key_path = node.key_path();
  auto missing = [&](absl::string_view key, absl::string_view allowed) {
    return ConfigError(node.source(), ChildKeyPath(node.key_path(), key),
                       absl::StrCat("missing; ", allowed));
  };

  std::optional<ConfigNode> name = node.Get("name");
  if (!name.has_value())
    return missing("name", absl::StrCat("every model needs a name, ", kModelNameForms));
  TS_ASSIGN_OR_RETURN(m.name, name->String("a model name"));
  if (!IsModelName(m.name)) {
    return name->Error(absl::StrCat(name->Describe(), " is not a model name; ", kModelNameForms));
  }

  std::optional<ConfigNode> path = node.Get("path");
  if (!path.has_value()) return missing("path", kModelPathForms);
  TS_ASSIGN_OR_RETURN(m.path, path->String(kModelPathForms));
  if (std::optional<std::string> problem = ModelPathProblem(m.path)) return path->Error(*problem);

  if (std::optional<ConfigNode> v = node.Get("quantization")) {
    TS_ASSIGN_OR_RETURN(m.quantization, ReadQuantization(*v));
  }
  if (std::optional<ConfigNode> v = node.Get("device_map")) {
    TS_ASSIGN_OR_RETURN(m.device_map, ReadDeviceMap(*v));
  } else {
    m.device_map =
        DeviceMap::Everything(Placement{Location{Location::Tier::kCpu, 0}, std::nullopt}, node.source(),
                              ChildKeyPath(node.key_path(), "device_map"));
  }
  if (std::optional<ConfigNode> v = node.Get("max_memory")) {
    TS_ASSIGN_OR_RETURN(m.max_memory, ReadMaxMemory(*v));
  }
  if (std::optional<ConfigNode> v = node.Get("offload_folder")) {
    TS_ASSIGN_OR_RETURN(m.offload_folder, v->String("a folder path"));
  }
  if (std::optional<ConfigNode> v = node.Get("max_batch_size")) {
    TS_ASSIGN_OR_RETURN(m.max_batch_size, v->Int(1, kMaxBatchSize));
  }
  if (std::optional<ConfigNode> v = node.Get("max_sequence_length")) {
    TS_ASSIGN_OR_RETURN(m.max_sequence_length, v->Int(1, kMaxSequenceLength));
  }
  if (std::optional<ConfigNode> v = node.Get("max_batch_tokens")) {
    TS_ASSIGN_OR_RETURN(m.max_batch_tokens, v->Int(1, kMaxBatchTokens));
  }
  if (std::optional<ConfigNode> v = node.Get("kv_cache_bytes")) {
    TS_ASSIGN_OR_RETURN(m.kv_cache_bytes, v->ByteSize(1, std::numeric_limits<int64_t>::max()));
    m.kv_cache_bytes_key = v->key_path();
  }
  if (std::optional<ConfigNode> v = node.Get("kv_block_tokens")) {
    TS_ASSIGN_OR_RETURN(m.kv_block_tokens, v->Int(1, kMaxKvBlockTokens));
  }
  if (std::optional<ConfigNode> v = node.Get("kv_cache_dtype")) {
    TS_ASSIGN_OR_RETURN(const std::string name, v->String(absl::StrCat("expected ", kKvCacheDtypes)));
    const std::optional<DType> t = ParseKvCacheDtype(name);
    if (!t.has_value()) {
      return v->Error(absl::StrCat(v->Describe(), " is not a KV cache type; expected ", kKvCacheDtypes));
    }
    m.kv_cache_dtype = *t;
  }
  if (std::optional<ConfigNode> v = node.Get("prefix_caching")) {
    TS_ASSIGN_OR_RETURN(m.prefix_caching, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("parse_special_tokens_in_chat")) {
    TS_ASSIGN_OR_RETURN(m.parse_special_tokens_in_chat, v->Bool());
  }
  if (std::optional<ConfigNode> v = node.Get("accelerator")) {
    TS_ASSIGN_OR_RETURN(m.accelerator, v->String(kAcceleratorForms));
    if (m.accelerator != "cuda" && m.accelerator != "sim") {
      return v->Error(absl::StrCat(v->Describe(), " is not an accelerator; ", kAcceleratorForms));
    }
  }
  if (std::optional<ConfigNode> v = node.Get("prefetch_depth")) {
    TS_ASSIGN_OR_RETURN(m.prefetch_depth, v->Int(0, kMaxPrefetchDepth));
  }
  if (std::optional<ConfigNode> v = node.Get("activation_precision")) {
    TS_ASSIGN_OR_RETURN(const std::string name, v->String("expected fp32 or int8"));
    const std::optional<ActivationPrecision> a = ParseActivationPrecision(name);
    if (!a.has_value()) return v->Error(absl::StrCat(v->Describe(), " is not an activation precision; expected fp32 or int8"));
    if (*a == ActivationPrecision::kInt8 && m.quantization.enabled()) {
      return v->Error(
          "int8 applies to GGUF block weights served as stored (Q4_0, Q4_1, Q8_0); with quantization "
          "(load_in_8bit, load_in_4bit) the linear layers multiply fp32 activations: use fp32");
    }
    m.activation_precision = *a;
  }
  return m;
}

// Where each document of a YAML stream starts; the rest of the events are ignored.
class DocumentStarts final : public YAML::EventHandler {
 public:
  YAML::Mark start;  // of the last document

  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Loads the single YAML document of `text`, or says where the syntax breaks.
absl::StatusOr<YAML::Node> LoadYaml(const std::string& text, const std::string& source) {
  try {
    // The documents are counted with the parser, not YAML::LoadAll: yaml-cpp
    // 0.7's LoadAll loops forever, adding a null document each turn, when the
    // parser stops on a token it never consumes, as in a lone "," (found by
    // tests/fuzz/yaml_config_fuzz; jbeder/yaml-cpp#1040, fixed upstream by
    // #1319 after 0.8). A document that starts where the last one did is that loop.
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts starts;
    int documents = 0;
    int last_start = -1;
    while (parser.HandleNextDocument(starts)) {
      if (starts.start.pos <= last_start) {
        return ConfigError(source, "",
                           absl::StrCat("line ", starts.start.line + 1, ", column ",
                                        starts.start.column + 1,
                                        ": invalid YAML: unexpected text; expected a value or a "
                                        "new document"));
      }
      last_start = starts.start.pos;
      ++documents;
    }
    if (documents > 1) {
      return ConfigError(source, "",
                         absl::StrCat("holds ", documents, " YAML documents; expected one"));
    }
    return documents == 0 ? YAML::Node() : YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    return ConfigError(
        source, "",
        absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1,
                     ": invalid YAML: nested too deeply; expected at most ", e.depth(), " levels"));
  } catch (const YAML::Exception& e) {
    // yaml-cpp counts lines and columns from 0.
    return ConfigError(source, "",
                       absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1,
                                    ": invalid YAML: ", e.msg));
  } catch (const std::exception& e) {
    return ConfigError(source, "", absl::StrCat("cannot parse YAML: ", e.what()));
  }
}

absl::Status CheckRange(absl::string_view flag, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return ConfigError(
      "", flag, absl::StrCat(v, " is out of range; expected an integer from ", lo, " to ", hi));
}

}  // namespace

absl::StatusOr<QuantizationConfig> ParseQuantizationConfig(std::string_view yaml_text,
                                                           const std::string& source_name) {
  TS_ASSIGN_OR_RETURN(const YAML::Node doc,
                      LoadYaml(std::string(yaml_text.data(), yaml_text.size()), source_name));
  if (doc.IsNull()) return QuantizationConfig();
  return ReadQuantization(ConfigNode(doc, source_name, ""));
}

absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view yaml_text,
                                               const std::string& source_name) {
  TS_ASSIGN_OR_RETURN(const YAML::Node doc,
                      LoadYaml(std::string(yaml_text.data(), yaml_text.size()), source_name));
  ServerConfig config;
  config.source = source_name;
  const ConfigNode root(doc, source_name, "");
  if (doc.IsNull()) {
    return root.Error("the file holds no settings; expected a map with the keys server and models");
  }
  TS_RETURN_IF_ERROR(root.CheckMap(kTopKeys, "a map with the keys server and models"));
  if (std::optional<ConfigNode> server = root.Get("server"))
    TS_RETURN_IF_ERROR(ReadServer(*server, &config));
  if (std::optional<ConfigNode> models = root.Get("models")) {
    TS_ASSIGN_OR_RETURN(std::vector<ConfigNode> items, models->Items("a list of models"));
    absl::flat_hash_map<std::string, std::string> key_path_of_name;
    for (const ConfigNode& item : items) {
      TS_ASSIGN_OR_RETURN(ModelServingConfig m, ReadModel(item));
      auto [it, inserted] = key_path_of_name.emplace(m.name, m.key_path);
      if (!inserted) {
        return ConfigError(source_name, ChildKeyPath(m.key_path, "name"),
                           absl::StrCat("\"", m.name, "\" is already the name of ", it->second,
                                        "; expected a name used by one model only"));
      }
      config.models.push_back(std::move(m));
    }
  }
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  TS_ASSIGN_OR_RETURN(std::string text,
                      ReadSmallFile(path, kMaxConfigFileBytes, "",
                                    SmallFileKind{"config file", "a YAML config file"}));
  return ParseServerConfig(text, path);
}

absl::Status ApplyFlagOverrides(ServerConfig* config, const FlagOverrides& flags) {
  for (auto [flag, value, field] :
       {std::tuple<const char*, const std::optional<std::string>*, std::string*>{
            "--listen", &flags.listen, &config->listen},
        {"--metrics_listen", &flags.metrics_listen, &config->metrics_listen}}) {
    if (!value->has_value()) continue;
    if (!PortOf(**value).has_value()) {
      return ConfigError(
          "", flag,
          absl::StrCat("\"", absl::CHexEscape(**value), "\" is not host:port; ", kHostPortForms));
    }
    *field = **value;
  }
  if (AddressesClash(config->listen, config->metrics_listen)) {
    return ConfigError(
        "", flags.metrics_listen.has_value() ? "--metrics_listen" : "--listen",
        absl::StrCat("gRPC (", config->listen, ") and metrics (", config->metrics_listen,
                     ") would share a port; expected different ports"));
  }
  if (flags.max_queued_requests.has_value()) {
    TS_RETURN_IF_ERROR(
        CheckRange("--max_queued_requests", *flags.max_queued_requests, 1, kMaxQueuedRequests));
    config->max_queued_requests = *flags.max_queued_requests;
  }
  if (flags.threads.has_value()) {
    TS_RETURN_IF_ERROR(CheckRange("--threads", *flags.threads, 0, kMaxThreads));
    config->threads = *flags.threads;
  }
  if (flags.model.has_value()) {
    if (!config->models.empty()) {
      return ConfigError(
          "", "--model",
          absl::StrCat(config->source, " already lists ", config->models.size(), " model(s) (",
                       config->models.front().name, (config->models.size() > 1 ? ", ..." : ""),
                       "); expected --model only with a config file without models"));
    }
    const std::string& path = *flags.model;
    if (std::optional<std::string> problem = ModelPathProblem(path))
      return ConfigError("", "--model", *problem);
    std::string trimmed = path;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    ModelServingConfig m;
    m.name = std::filesystem::path(trimmed).stem().string();
    if (!IsModelName(m.name)) {
      return ConfigError(
          "", "--model",
          absl::StrCat("the file name \"", absl::CHexEscape(m.name), "\" is not a model name; ",
                       kModelNameForms, ", or list the model in a config file under such a name"));
    }
    m.path = path;
    m.key_path = "--model";
    m.device_map = DeviceMap::Everything(Placement{Location{Location::Tier::kCpu, 0}, std::nullopt},
                                         config->source, "--model");
    config->models.push_back(std::move(m));
  }
  if (config->models.empty()) {
    return ConfigError(
        config->source, "models",
        "no model to serve; expected a models list in the config file or --model PATH");
  }
  if (flags.accelerator.has_value()) {
    if (*flags.accelerator != "cuda" && *flags.accelerator != "sim") {
      return ConfigError("", "--accelerator",
                         absl::StrCat("\"", absl::CHexEscape(*flags.accelerator),
                                      "\" is not an accelerator; ", kAcceleratorForms));
    }
    for (ModelServingConfig& m : config->models) m.accelerator = *flags.accelerator;
  }
  for (ModelServingConfig& m : config->models) {
    if (m.accelerator == "sim") {
      m.device_map = m.device_map.WithTier(Location::Tier::kCuda, Location::Tier::kSim);
      for (auto& [device, bytes] : m.max_memory) {
        if (device.tier == Location::Tier::kCuda) device.tier = Location::Tier::kSim;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDeviceMapCoversModel(const ModelServingConfig& model, const std::string& source) {
  absl::StatusOr<std::unique_ptr<WeightSource>> weights = WeightSource::Open(model.path);
  if (!weights.ok()) {
    return ConfigError(
        source, model.key_path == "--model" ? "--model" : ChildKeyPath(model.key_path, "path"),
        weights.status().message());
  }
  return CheckDeviceMapCoversModel(model, **weights, source);
}

absl::Status CheckDeviceMapCoversModel(const ModelServingConfig& model, const WeightSource& weights,
                                       const std::string& source) {
  std::vector<std::string> names = weights.HfTensorNames();
  TS_RETURN_IF_ERROR(model.device_map.CheckCovers(names, source));
  // A key may also name a module without tensors of its own (a tied head, a
  // dropout), as accelerate writes them.
  for (const std::string& m : weights.HfModulesWithoutTensors()) names.push_back(m + ".");
  return model.device_map.CheckEveryKeyUsed(names, source);
}

absl::Status CheckServable(const ModelServingConfig& model, const std::string& source) {
  for (const auto& [device, bytes] : model.max_memory) {
    const std::string key = ChildKeyPath(ChildKeyPath(model.key_path, "max_memory"), device.ToString());
    if (device.tier == Location::Tier::kCuda) {
      return ConfigError(
          source, key,
          absl::StrCat("cuda devices cannot be budgeted yet (this build computes on the cpu or on "
                       "simulated accelerators); expected sim:N or cpu, or set ",
                       ChildKeyPath(model.key_path, "accelerator"),
                       ": sim (or --accelerator=sim) to budget simulated devices"));
    }
    if (device.tier == Location::Tier::kDisk) {
      return ConfigError(source, key,
                         "disk is not budgeted (what does not fit elsewhere goes there); "
                         "expected sim:N or cpu");
    }
  }
  const std::string folder_key = ChildKeyPath(model.key_path, "offload_folder");
  if (!model.offload_folder.empty()) {
    // Made if missing, as accelerate does; then proven writable now rather
    // than after the weights were read.
    std::error_code ec;
    std::filesystem::create_directories(model.offload_folder, ec);
    if (ec) {
      return ConfigError(source, folder_key,
                         absl::StrCat("cannot create the folder ", model.offload_folder, ": ",
                                      ec.message(), "; expected a writable folder"));
    }
    const std::string probe = OffloadPath(model) + ".probe";
    {
      std::ofstream out(probe, std::ios::binary | std::ios::trunc);
      out << "tierserve";
      if (!out.good()) {
        return ConfigError(source, folder_key,
                           absl::StrCat("cannot write in ", model.offload_folder, " (", probe,
                                        "): ", std::strerror(errno), "; expected a writable folder"));
      }
    }
    std::filesystem::remove(probe, ec);
  }
  if (model.device_map.is_auto()) return absl::OkStatus();  // the planner places it
  const std::string dm = ChildKeyPath(model.key_path, "device_map");
  for (const DeviceMap::Entry& e : model.device_map.entries()) {
    const Placement& p = e.placement;
    if (p.device.tier == Location::Tier::kCuda) {
      return ConfigError(
          source, ChildKeyPath(dm, e.key),
          absl::StrCat(p.device.ToString(),
                       " placement is not available yet (this build computes on the cpu or on "
                       "simulated accelerators); expected cpu, disk or sim:N, or set ",
                       ChildKeyPath(model.key_path, "accelerator"),
                       ": sim (or --accelerator=sim) to run this map on simulated devices"));
    }
    if (p.device.tier == Location::Tier::kDisk && model.offload_folder.empty()) {
      return ConfigError(source, ChildKeyPath(dm, e.key),
                         absl::StrCat("disk placement needs a folder to write the weights to; set ",
                                      folder_key));
    }
    if (p.precision.has_value() && !CanQuantizeAtLoad(*p.precision)) {
      return ConfigError(source, ChildKeyPath(ChildKeyPath(dm, e.key), "precision"),
                         absl::StrCat("precision ", PrecisionName(*p.precision),
                                      " cannot be made at load yet; expected fp32, int8, nf4 or "
                                      "fp4, or no precision to serve the stored one"));
    }
  }
  return absl::OkStatus();
}

std::string OffloadPath(const ModelServingConfig& model) {
  if (model.offload_folder.empty()) return "";
  std::string file = model.name;
  for (char& c : file) {
    if (c == '/' || c == ':') c = '_';
  }
  return (std::filesystem::path(model.offload_folder) / (file + ".offload")).string();
}

}  // namespace tierserve
