// The daemon's YAML config: the happy paths, the default deploy file, flag
// overrides, and every error as one line naming file, key path and what is
// allowed.
#include "server/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/format/testing/test_files.h"
#include "server/config_node.h"

namespace tierserve {
namespace {

constexpr char kGguf[] = "tests/data/tiny_llama_gguf/tiny_llama_f32.gguf";
constexpr char kHfFolder[] = "tests/data/tiny_llama";

// A config with one model `m` at `path` and the given extra model lines.
std::string OneModel(const std::string& extra = "", const std::string& path = kGguf) {
  return absl::StrCat("models:\n  - name: m\n    path: ", path, "\n", extra);
}

// The error of parsing `yaml` as "x.yaml"; checks it is one line.
std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(yaml, "x.yaml");
  EXPECT_FALSE(c.ok()) << yaml;
  if (c.ok()) return "";
  const std::string message(c.status().message());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  return message;
}

TEST(ConfigTest, DesignExample) {
  // DESIGN.md's example, with a model file that ships with the tests.
  const std::string yaml = absl::StrCat(R"(
server:
  listen: 0.0.0.0:50051          # gRPC
  metrics_listen: 0.0.0.0:9464   # Prometheus /metrics
  max_queued_requests: 256       # past this: RESOURCE_EXHAUSTED
models:
  - name: smollm2
    path: )",
                                        kGguf, R"(
    quantization:                 # mirrors transformers' BitsAndBytesConfig
      load_in_8bit: true          # or load_in_4bit: true
      llm_int8_threshold: 6.0
      llm_int8_skip_modules: [lm_head]
      bnb_4bit_quant_type: nf4    # nf4 | fp4
      bnb_4bit_use_double_quant: true
      bnb_4bit_compute_dtype: bf16
    device_map:                   # or: device_map: auto
      model.embed_tokens: cuda:0
      model.layers.0-14: cuda:0   # a layer range is shorthand for 15 prefixes
      model.layers.15-29: cpu
      model.norm: cuda:0
      lm_head: disk
    max_memory: {cuda:0: 2GiB, cpu: 8GiB}
    offload_folder: /var/lib/tierserve/offload
    max_batch_size: 32
    max_sequence_length: 2048
)");
  absl::StatusOr<ServerConfig> c = ParseServerConfig(yaml, "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->source, "x.yaml");
  EXPECT_EQ(c->listen, "0.0.0.0:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9464");
  EXPECT_EQ(c->max_queued_requests, 256);
  EXPECT_EQ(c->max_message_bytes, 4 << 20);
  EXPECT_EQ(c->shutdown_grace_seconds, 30);
  EXPECT_EQ(c->threads, 0);
  ASSERT_EQ(c->models.size(), 1u);
  const ModelServingConfig& m = c->models[0];
  EXPECT_EQ(m.name, "smollm2");
  EXPECT_EQ(m.path, kGguf);
  EXPECT_EQ(m.key_path, "models[0]");
  EXPECT_TRUE(m.quantization.load_in_8bit);
  EXPECT_FALSE(m.quantization.load_in_4bit);
  EXPECT_DOUBLE_EQ(m.quantization.llm_int8_threshold, 6.0);
  EXPECT_EQ(m.quantization.llm_int8_skip_modules, std::vector<std::string>{"lm_head"});
  EXPECT_EQ(m.quantization.bnb_4bit_quant_type, QuantizationConfig::QuantType::kNf4);
  EXPECT_TRUE(m.quantization.bnb_4bit_use_double_quant);
  EXPECT_EQ(m.quantization.bnb_4bit_compute_dtype, ComputeDType::kBf16);
  EXPECT_EQ(m.device_map.entries().size(), 1u + 15 + 15 + 1 + 1);
  EXPECT_EQ(m.device_map.Resolve("model.layers.20.mlp.up_proj.weight")->device.ToString(), "cpu");
  EXPECT_EQ(m.device_map.Resolve("lm_head.weight")->device.ToString(), "disk");
  ASSERT_EQ(m.max_memory.size(), 2u);
  EXPECT_EQ(m.max_memory[0].first.ToString(), "cuda:0");
  EXPECT_EQ(m.max_memory[0].second, 2LL << 30);
  EXPECT_EQ(m.max_memory[1].first.ToString(), "cpu");
  EXPECT_EQ(m.max_memory[1].second, 8LL << 30);
  EXPECT_EQ(m.offload_folder, "/var/lib/tierserve/offload");
  EXPECT_EQ(m.max_batch_size, 32);
  EXPECT_EQ(m.max_sequence_length, 2048);
}

TEST(ConfigTest, Defaults) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel("", kHfFolder), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "0.0.0.0:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9464");
  EXPECT_EQ(c->max_queued_requests, 256);
  EXPECT_EQ(c->max_message_bytes, 4 << 20);
  EXPECT_EQ(c->shutdown_grace_seconds, 30);
  EXPECT_EQ(c->threads, 0);
  const ModelServingConfig& m = c->models[0];
  EXPECT_FALSE(m.quantization.load_in_8bit);
  EXPECT_FALSE(m.quantization.load_in_4bit);
  // transformers' BitsAndBytesConfig defaults.
  EXPECT_EQ(m.quantization.bnb_4bit_quant_type, QuantizationConfig::QuantType::kFp4);
  EXPECT_EQ(m.quantization.bnb_4bit_compute_dtype, ComputeDType::kFp32);
  EXPECT_FALSE(m.device_map.is_auto());
  EXPECT_EQ(m.device_map.key_path(), "models[0].device_map");
  EXPECT_EQ(m.device_map.Resolve("model.layers.0.mlp.up_proj.weight")->device.ToString(), "cpu");
  EXPECT_TRUE(m.max_memory.empty());
  EXPECT_EQ(m.offload_folder, "");
  EXPECT_EQ(m.max_batch_size, 8);
  EXPECT_FALSE(m.max_sequence_length.has_value());
}

TEST(ConfigTest, ServerSettings) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      "server:\n  listen: \"[::1]:7000\"\n  metrics_listen: localhost:7001\n  max_queued_requests: "
      "1\n"
      "  max_message_bytes: 16MiB\n  shutdown_grace_seconds: 0\n  threads: 4\n",
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "[::1]:7000");
  EXPECT_EQ(c->metrics_listen, "localhost:7001");
  EXPECT_EQ(c->max_queued_requests, 1);
  EXPECT_EQ(c->max_message_bytes, 16 << 20);
  EXPECT_EQ(c->shutdown_grace_seconds, 0);
  EXPECT_EQ(c->threads, 4);
  EXPECT_TRUE(c->models.empty());  // --model may still supply one
}

TEST(ConfigTest, SecuritySettings) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      "server:\n  tls: {cert_file: s.crt, key_file: s.key, client_ca_file: ca.crt}\n"
      "  api_keys_file: keys\n  open_services: [reflection]\n"
      "  metrics_auth: {username: prom, password_file: pw}\n  max_streams_per_connection: 8\n",
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->tls.has_value());
  EXPECT_EQ(c->tls->cert_file, "s.crt");
  EXPECT_EQ(c->tls->key_file, "s.key");
  EXPECT_EQ(c->tls->client_ca_file, "ca.crt");
  EXPECT_EQ(c->api_keys_file, "keys");
  EXPECT_EQ(c->open_services, std::vector<std::string>{"reflection"});
  ASSERT_TRUE(c->metrics_auth.has_value());
  EXPECT_EQ(c->metrics_auth->username, "prom");
  EXPECT_EQ(c->metrics_auth->password_file, "pw");
  EXPECT_EQ(c->max_streams_per_connection, 8);

  absl::StatusOr<ServerConfig> defaults = ParseServerConfig("server: {}\n", "x.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->tls.has_value());
  EXPECT_EQ(defaults->open_services, std::vector<std::string>{"health"});
  EXPECT_EQ(defaults->max_streams_per_connection, 256);

  EXPECT_EQ(ErrorOf("server:\n  tls: {cert_file: s.crt}\n"),
            "x.yaml: server.tls: has no key_file; expected cert_file and key_file (PEM files)");
  EXPECT_EQ(ErrorOf("server:\n  tls: {cert_file: \"\", key_file: k}\n"),
            "x.yaml: server.tls.cert_file: got \"\"; expected the path of a PEM file");
  EXPECT_EQ(ErrorOf("server:\n  open_services: [health]\n"),
            "x.yaml: server.open_services: has no effect without api_keys_file (every service is "
            "open); set api_keys_file or remove it");
  EXPECT_EQ(ErrorOf("server:\n  api_keys_file: k\n  open_services: [generation]\n"),
            "x.yaml: server.open_services[0]: \"generation\" is not one of health, reflection");
  EXPECT_EQ(ErrorOf("server:\n  metrics_auth: {username: a}\n"),
            "x.yaml: server.metrics_auth: expected both username and password_file");
  EXPECT_EQ(ErrorOf("server:\n  metrics_auth: {username: \"a:b\", password_file: p}\n"),
            "x.yaml: server.metrics_auth.username: expected a non-empty user name without ':'");
  EXPECT_NE(ErrorOf("server:\n  max_streams_per_connection: 0\n")
                .find("x.yaml: server.max_streams_per_connection: "),
            std::string::npos);
}

TEST(ConfigTest, AutoDeviceMapAndFourBit) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      OneModel("    device_map: auto\n    max_memory: {0: 512MiB, cpu: 1.5GB, disk: 100GB}\n"
               "    quantization: {load_in_4bit: true, bnb_4bit_quant_type: nf4}\n"),
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->models[0].device_map.is_auto());
  EXPECT_TRUE(c->models[0].quantization.load_in_4bit);
  EXPECT_EQ(c->models[0].quantization.bnb_4bit_quant_type, QuantizationConfig::QuantType::kNf4);
  ASSERT_EQ(c->models[0].max_memory.size(), 3u);
  EXPECT_EQ(c->models[0].max_memory[0].first.ToString(), "cuda:0");
  EXPECT_EQ(c->models[0].max_memory[0].second, 512LL << 20);
  EXPECT_EQ(c->models[0].max_memory[1].second, 1'500'000'000LL);
  EXPECT_EQ(c->models[0].max_memory[2].first.ToString(), "disk");
}

TEST(ConfigTest, ActivationPrecision) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel(""), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->models[0].activation_precision, ActivationPrecision::kFp32);  // the default
  c = ParseServerConfig(OneModel("    activation_precision: int8\n"), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->models[0].activation_precision, ActivationPrecision::kInt8);
}

TEST(ConfigTest, KvCacheDtype) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel(""), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->models[0].kv_cache_dtype, DType::kF32);  // the default
  c = ParseServerConfig(OneModel("    kv_cache_dtype: fp16\n"), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->models[0].kv_cache_dtype, DType::kF16);
  c = ParseServerConfig(OneModel("    kv_cache_dtype: q8_0\n"), "x.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "x.yaml: models[0].kv_cache_dtype: \"q8_0\" is not a KV cache type; expected fp32 or fp16");
}

TEST(ConfigTest, UnknownKeysNameTheFullPath) {
  EXPECT_EQ(
      ErrorOf("server:\n  listn: 0.0.0.0:1\n"),
      "x.yaml: server.listn: unknown key; known keys: listen, metrics_listen, max_queued_requests, "
      "max_message_bytes, shutdown_grace_seconds, threads, sim_device, max_streams_per_connection, "
      "tls, api_keys_file, open_services, metrics_auth");
  EXPECT_EQ(ErrorOf("servers: {}\n"), "x.yaml: servers: unknown key; known keys: server, models");
  EXPECT_EQ(
      ErrorOf(OneModel("    max_batch: 4\n")),
      "x.yaml: models[0].max_batch: unknown key; known keys: name, path, quantization, device_map, "
      "max_memory, offload_folder, max_batch_size, max_sequence_length, "
      "max_batch_tokens, kv_cache_bytes, kv_block_tokens, kv_cache_dtype, prefix_caching, "
      "parse_special_tokens_in_chat, accelerator, prefetch_depth, activation_precision");
  EXPECT_EQ(ErrorOf(OneModel("    quantization: {load_in_8bit: true, load_in_2bit: true}\n")),
            "x.yaml: models[0].quantization.load_in_2bit: unknown key; known keys: load_in_8bit, "
            "load_in_4bit, llm_int8_threshold, llm_int8_skip_modules, "
            "llm_int8_enable_fp32_cpu_offload, llm_int8_has_fp16_weight, bnb_4bit_quant_type, "
            "bnb_4bit_use_double_quant, bnb_4bit_compute_dtype, bnb_4bit_quant_storage");
  EXPECT_EQ(
      ErrorOf(OneModel("    device_map: {lm_head: {device: cpu, precison: int8}}\n")),
      "x.yaml: models[0].device_map.lm_head.precison: unknown key; known keys: device, precision");
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_EQ(
      ErrorOf("server:\n  max_queued_requests: lots\n"),
      "x.yaml: server.max_queued_requests: \"lots\" is not an integer; expected an integer from 1 "
      "to 1000000");
  EXPECT_EQ(ErrorOf("server:\n  threads: \"4\"\n"),
            "x.yaml: server.threads: \"4\" is not an integer; expected an integer from 0 to 1024");
  EXPECT_EQ(
      ErrorOf("server:\n  threads: 2.5\n"),
      "x.yaml: server.threads: \"2.5\" is not an integer; expected an integer from 0 to 1024");
  EXPECT_EQ(ErrorOf("server: [a, b]\n"),
            "x.yaml: server: got a list; expected a map of server settings");
  EXPECT_EQ(ErrorOf("models: {name: m}\n"), "x.yaml: models: got a map; expected a list of models");
  EXPECT_EQ(ErrorOf("models: [m]\n"),
            "x.yaml: models[0]: got \"m\"; expected a map describing a model (name, path, ...)");
  EXPECT_EQ(ErrorOf("models:\n  - name: [a]\n    path: x\n"),
            "x.yaml: models[0].name: got a list; expected a model name");
  EXPECT_EQ(ErrorOf(OneModel("    quantization: {load_in_8bit: yes}\n")),
            "x.yaml: models[0].quantization.load_in_8bit: \"yes\" is not a boolean; expected true "
            "or false");
  EXPECT_EQ(
      ErrorOf(OneModel("    quantization: {load_in_8bit: true, llm_int8_skip_modules: lm_head}\n")),
      "x.yaml: models[0].quantization.llm_int8_skip_modules: got \"lm_head\"; expected a list of "
      "module paths");
  EXPECT_EQ(ErrorOf(OneModel("    max_memory: [2GiB]\n")),
            "x.yaml: models[0].max_memory: got a list; expected a map from device to size, like "
            "{cuda:0: 2GiB, cpu: 8GiB}");
  EXPECT_EQ(ErrorOf("- a\n- b\n"),
            "x.yaml: got a list; expected a map with the keys server and models");
}

TEST(ConfigTest, LimitsMustBePositive) {
  EXPECT_EQ(ErrorOf("server:\n  max_queued_requests: 0\n"),
            "x.yaml: server.max_queued_requests: 0 is out of range; expected an integer from 1 to "
            "1000000");
  EXPECT_EQ(ErrorOf("server:\n  max_queued_requests: -5\n"),
            "x.yaml: server.max_queued_requests: -5 is out of range; expected an integer from 1 to "
            "1000000");
  EXPECT_EQ(ErrorOf("server:\n  threads: -1\n"),
            "x.yaml: server.threads: -1 is out of range; expected an integer from 0 to 1024");
  EXPECT_EQ(ErrorOf("server:\n  shutdown_grace_seconds: -1\n"),
            "x.yaml: server.shutdown_grace_seconds: -1 is out of range; expected an integer from 0 "
            "to 3600");
  EXPECT_EQ(
      ErrorOf("server:\n  max_message_bytes: 0\n"),
      "x.yaml: server.max_message_bytes: \"0\" is 0 bytes, out of range; expected 1 to 2147483647 "
      "bytes");
  EXPECT_EQ(
      ErrorOf("server:\n  max_message_bytes: 2GiB\n"),
      "x.yaml: server.max_message_bytes: \"2GiB\" is 2147483648 bytes, out of range; expected 1 to "
      "2147483647 bytes");
  EXPECT_EQ(
      ErrorOf(OneModel("    max_batch_size: 0\n")),
      "x.yaml: models[0].max_batch_size: 0 is out of range; expected an integer from 1 to 4096");
  EXPECT_EQ(
      ErrorOf(OneModel("    max_sequence_length: -2048\n")),
      "x.yaml: models[0].max_sequence_length: -2048 is out of range; expected an integer from 1 to "
      "1048576");
  EXPECT_EQ(ErrorOf(OneModel("    quantization: {load_in_8bit: true, llm_int8_threshold: -1}\n")),
            "x.yaml: models[0].quantization.llm_int8_threshold: -1 is out of range; expected a "
            "number >= 0 (0 turns the outlier split off)");
  EXPECT_EQ(ErrorOf(OneModel("    max_memory: {cpu: -1GiB}\n")),
            absl::StrCat("x.yaml: models[0].max_memory.cpu: \"-1GiB\" is not a size; expected ",
                         kByteSizeForms));
}

TEST(ConfigTest, Quantization) {
  EXPECT_EQ(
      ErrorOf(OneModel("    quantization: {load_in_8bit: true, load_in_4bit: true}\n")),
      "x.yaml: models[0].quantization: load_in_8bit and load_in_4bit are both true; expected at "
      "most one of them");
  EXPECT_EQ(ErrorOf(OneModel("    quantization: {load_in_4bit: true, bnb_4bit_quant_type: nf5}\n")),
            "x.yaml: models[0].quantization.bnb_4bit_quant_type: \"nf5\" is not one of nf4, fp4");
  EXPECT_EQ(
      ErrorOf(OneModel("    quantization: {load_in_4bit: true, bnb_4bit_compute_dtype: fp8}\n")),
      "x.yaml: models[0].quantization.bnb_4bit_compute_dtype: \"fp8\" is not one of fp32, fp16, "
      "bf16");
  EXPECT_EQ(ErrorOf(OneModel("    quantization: {bnb_4bit_quant_type: nf4}\n")),
            "x.yaml: models[0].quantization.bnb_4bit_quant_type: has no effect without "
            "load_in_8bit: true "
            "or load_in_4bit: true; set one of them or remove it");
  EXPECT_EQ(
      ErrorOf(OneModel("    quantization: {load_in_8bit: false, llm_int8_threshold: 6.0}\n")),
      "x.yaml: models[0].quantization.llm_int8_threshold: has no effect without load_in_8bit: true "
      "or load_in_4bit: true; set one of them or remove it");
}

TEST(ConfigTest, ListenAddresses) {
  for (const char* ok : {"0.0.0.0:50051", "127.0.0.1:1", "localhost:65535", "[::]:50051",
                         "[::1]:8080", "tierserve-0.svc.cluster.local:50051"}) {
    absl::StatusOr<ServerConfig> c =
        ParseServerConfig(absl::StrCat("server:\n  listen: \"", ok, "\"\n"), "x.yaml");
    EXPECT_TRUE(c.ok()) << ok << ": " << c.status();
  }
  EXPECT_EQ(
      ErrorOf("server:\n  listen: 50051\n"),
      "x.yaml: server.listen: \"50051\" is not host:port; expected host:port with a host name, an "
      "IPv4 address or an [IPv6] address, and a port from 0 to 65535 (0: any free port, which the "
      "daemon logs), like 0.0.0.0:50051");
  for (const char* bad :
       {"localhost", ":50051", "host:65536", "host:", "host:05", "[::1:50051",
        "::1:50051", "999.1.1.1:80", "1.2.3:80", "-bad-:80", "a b:80", "[]:80", "host:http"}) {
    EXPECT_NE(ErrorOf(absl::StrCat("server:\n  listen: \"", bad, "\"\n")).find("is not host:port"),
              std::string::npos)
        << bad;
  }
  EXPECT_EQ(ErrorOf("server:\n  listen: 0.0.0.0:7000\n  metrics_listen: 127.0.0.1:7000\n"),
            "x.yaml: server.metrics_listen: \"127.0.0.1:7000\" overlaps listen (\"0.0.0.0:7000\"); "
            "expected a different port");
  EXPECT_TRUE(ParseServerConfig(
                  "server:\n  listen: 127.0.0.1:7000\n  metrics_listen: 127.0.0.2:7000\n", "x.yaml")
                  .ok());
  // Port 0: any free port, for both servers.
  EXPECT_TRUE(ParseServerConfig(
                  "server:\n  listen: 127.0.0.1:0\n  metrics_listen: 127.0.0.1:0\n", "x.yaml")
                  .ok());
}

TEST(ConfigTest, Models) {
  EXPECT_EQ(
      ErrorOf(OneModel() + "  - name: m\n    path: " + kHfFolder + "\n"),
      "x.yaml: models[1].name: \"m\" is already the name of models[0]; expected a name used by one "
      "model only");
  EXPECT_EQ(ErrorOf("models:\n  - path: x\n"),
            "x.yaml: models[0].name: missing; every model needs a name, expected 1 to 128 letters, "
            "digits "
            "and . _ - / :, starting with a letter or digit");
  EXPECT_EQ(ErrorOf("models:\n  - name: m\n"),
            "x.yaml: models[0].path: missing; expected a .gguf file or a HF model folder with "
            "config.json");
  EXPECT_EQ(
      ErrorOf(absl::StrCat("models:\n  - name: my model\n    path: ", kGguf, "\n")),
      "x.yaml: models[0].name: \"my model\" is not a model name; expected 1 to 128 letters, digits "
      "and . _ - / :, starting with a letter or digit");
  EXPECT_TRUE(
      ParseServerConfig(
          absl::StrCat("models:\n  - name: org/Model-1.5:q4_1\n    path: ", kGguf, "\n"), "x")
          .ok());
}

TEST(ConfigTest, ModelPaths) {
  const std::string cwd = std::filesystem::current_path().string();
  EXPECT_EQ(
      ErrorOf(OneModel("", "models/x.gguf")),
      "x.yaml: models[0].path: no such file or directory: models/x.gguf; expected a .gguf file or "
      "a "
      "HF model folder with config.json (relative paths resolve against the working directory " +
          cwd + ")");
  EXPECT_EQ(
      ErrorOf(OneModel("", "/nonexistent/x.gguf")),
      "x.yaml: models[0].path: no such file or directory: /nonexistent/x.gguf; expected a .gguf "
      "file or a HF model folder with config.json");
  EXPECT_EQ(
      ErrorOf(OneModel("", "tests/data/tiny_llama/config.json")),
      "x.yaml: models[0].path: tests/data/tiny_llama/config.json is not a .gguf file; expected a "
      ".gguf file or a HF model folder with config.json");
  EXPECT_EQ(
      ErrorOf(OneModel("", "tests/data")),
      "x.yaml: models[0].path: tests/data is a folder without config.json; expected a .gguf file "
      "or a HF model folder with config.json");
}

TEST(ConfigTest, DeviceMapAndMaxMemoryErrorsCarryThePath) {
  EXPECT_EQ(ErrorOf(OneModel("    device_map: {model.layers.14-3: cpu}\n")),
            "x.yaml: models[0].device_map[\"model.layers.14-3\"]: the range 14-3 runs backwards; "
            "expected lo-hi with lo <= hi");
  EXPECT_EQ(ErrorOf(OneModel("    max_memory: {gpu0: 2GiB}\n")),
            "x.yaml: models[0].max_memory.gpu0: \"gpu0\" is not a device; expected cuda:N, a GPU "
            "index N, sim:N, cpu or disk");
  EXPECT_EQ(
      ErrorOf(OneModel("    max_memory: {0: 2GiB, cuda:0: 1GiB}\n")),
      "x.yaml: models[0].max_memory[\"cuda:0\"]: names cuda:0 a second time; expected each device "
      "once");
}

TEST(ConfigTest, YamlProblems) {
  EXPECT_EQ(ErrorOf("server:\n  listen: [1, 2\nmodels: []\n"),
            "x.yaml: line 3, column 7: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorOf("server: {}\nserver: {}\n"),
            "x.yaml: server: duplicate key; each key may appear once");
  EXPECT_EQ(ErrorOf(""),
            "x.yaml: the file holds no settings; expected a map with the keys server and models");
  EXPECT_EQ(ErrorOf("# only a comment\n"),
            "x.yaml: the file holds no settings; expected a map with the keys server and models");
  EXPECT_EQ(ErrorOf("server: {}\n---\nserver: {}\n"),
            "x.yaml: holds 2 YAML documents; expected one");
  EXPECT_EQ(ErrorOf("server: " + std::string(100000, '[')).rfind("x.yaml: line 1, column ", 0), 0u);
  EXPECT_NE(ErrorOf("server: " + std::string(100000, '[')).find("nested too deeply"),
            std::string::npos);
  EXPECT_EQ(ErrorOf("just text"),
            "x.yaml: got \"just text\"; expected a map with the keys server and models");
}

// Found by tests/fuzz/yaml_config_fuzz: yaml-cpp 0.7's LoadAll loops forever,
// allocating, on a stray "," (jbeder/yaml-cpp#1040), so these hung start-up.
TEST(ConfigTest, StrayCommaIsAnErrorNotAHang) {
  constexpr char kUnexpected[] = ": invalid YAML: unexpected text; expected a value or a new document";
  EXPECT_EQ(ErrorOf(","), absl::StrCat("x.yaml: line 1, column 1", kUnexpected));
  EXPECT_EQ(ErrorOf("--- ,"), absl::StrCat("x.yaml: line 1, column 5", kUnexpected));
  EXPECT_EQ(ErrorOf("server: {}\n...\n,\n"), absl::StrCat("x.yaml: line 3, column 1", kUnexpected));
  // The fuzzer's input: tests/data/configs/plan_sim.yaml, mutated.
  const std::string found =
      "# `tierserve plan` on a simulated accelerator smaller t  - name: tiny\n"
      "    path: $MODMLS/hf\n    acc,eierator: sim\n   ,device_map: auto\n"
      "    max_memory: {1: 480KiB, cpu: 64MiB}\n    max_batch_size: 1\n"
      "    max_sequence_length: 32\n    prefetch_depth: 0\n";
  EXPECT_EQ(ErrorOf(found), absl::StrCat("x.yaml: line 4, column 4", kUnexpected));
  absl::StatusOr<QuantizationConfig> q = ParseQuantizationConfig(found, "q.yaml");
  EXPECT_EQ(q.status().message(), absl::StrCat("q.yaml: line 4, column 4", kUnexpected));
}

TEST(LoadServerConfigTest, FileErrors) {
  absl::StatusOr<ServerConfig> missing = LoadServerConfig("deploy/no-such.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(
      missing.status().message(),
      "deploy/no-such.yaml: cannot open the config file: No such file or directory; expected a "
      "YAML config file");
  ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string big = dir.File("big.yaml");
  ASSERT_TRUE(WriteFile(big, std::string((1 << 20) + 1, '#')).ok());
  absl::StatusOr<ServerConfig> too_big = LoadServerConfig(big);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().message(),
            big + ": the file is larger than 1048576 bytes; expected a YAML config file");
  const std::string bad = dir.File("bad.yaml");
  ASSERT_TRUE(WriteFile(bad, "server:\n  listn: x\n").ok());
  EXPECT_EQ(
      LoadServerConfig(bad).status().message(),
      bad +
          ": server.listn: unknown key; known keys: listen, metrics_listen, max_queued_requests, "
          "max_message_bytes, shutdown_grace_seconds, threads, sim_device, max_streams_per_connection, "
      "tls, api_keys_file, open_services, metrics_auth");
}

// The default config serves SmolLM2 on the CPU; its device map covers the
// model's 272 tensors.
TEST(LoadServerConfigTest, DeployDefault) {
  const char* model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(model))
    GTEST_FAIL() << model << " is missing: run scripts/fetch_model.sh";
  absl::StatusOr<ServerConfig> c = LoadServerConfig("deploy/tierserve.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "0.0.0.0:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9464");
  EXPECT_EQ(c->max_queued_requests, 256);
  EXPECT_EQ(c->max_message_bytes, 4 << 20);
  EXPECT_EQ(c->shutdown_grace_seconds, 30);
  ASSERT_EQ(c->models.size(), 1u);
  const ModelServingConfig& m = c->models[0];
  EXPECT_EQ(m.name, "smollm2");
  EXPECT_EQ(m.path, model);
  EXPECT_EQ(m.max_batch_size, 8);
  EXPECT_EQ(m.max_sequence_length, 2048);
  EXPECT_FALSE(m.quantization.load_in_8bit || m.quantization.load_in_4bit);
  ASSERT_EQ(m.device_map.entries().size(), 1u);
  EXPECT_EQ(m.device_map.entries()[0].prefix, "");
  EXPECT_EQ(m.device_map.entries()[0].placement.device.ToString(), "cpu");
  EXPECT_TRUE(CheckDeviceMapCoversModel(m, c->source).ok())
      << CheckDeviceMapCoversModel(m, c->source);
  EXPECT_TRUE(ApplyFlagOverrides(&*c, FlagOverrides{}).ok());
}

TEST(CheckDeviceMapCoversModelTest, NamesTheUnplacedTensorOrTheUnusedKey) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      OneModel(
          "    device_map: {model.embed_tokens: cpu, model.layers.0-1: cpu, model.norm: cpu}\n",
          kHfFolder),
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(
      CheckDeviceMapCoversModel(c->models[0], "x.yaml").message(),
      "x.yaml: models[0].device_map: tensor lm_head.weight has no placement; every tensor needs a "
      "key that is a prefix of its name, such as \"lm_head\", or \"\" for everything not placed "
      "otherwise");
  c = ParseServerConfig(OneModel("    device_map: {\"\": cpu, model.layers.0-2: disk}\n", kGguf),
                        "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::string(CheckDeviceMapCoversModel(c->models[0], "x.yaml").message()),
            "x.yaml: models[0].device_map[\"model.layers.0-2\"]: model.layers.2 matches no module "
            "of the model; keys must be module paths of the model; the nearest are "
            "model.layers.0, model.layers.1, model.layers");
  c = ParseServerConfig(OneModel("    device_map: auto\n", kHfFolder), "x.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(CheckDeviceMapCoversModel(c->models[0], "x.yaml").ok());
}

TEST(CheckDeviceMapCoversModelTest, BrokenModelFile) {
  ScopedTempDir dir;
  const std::string path = dir.File("broken.gguf");
  ASSERT_TRUE(WriteFile(path, "not a gguf file").ok());
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel("", path), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const absl::Status s = CheckDeviceMapCoversModel(c->models[0], "x.yaml");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind(absl::StrCat("x.yaml: models[0].path: ", path), 0), 0u) << s;
}

TEST(FlagOverridesTest, FlagsReplaceTheFile) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel(), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FlagOverrides f;
  f.listen = "127.0.0.1:6000";
  f.metrics_listen = "127.0.0.1:6001";
  f.max_queued_requests = 3;
  f.threads = 2;
  ASSERT_TRUE(ApplyFlagOverrides(&*c, f).ok());
  EXPECT_EQ(c->listen, "127.0.0.1:6000");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:6001");
  EXPECT_EQ(c->max_queued_requests, 3);
  EXPECT_EQ(c->threads, 2);
  ASSERT_EQ(c->models.size(), 1u);
}

TEST(FlagOverridesTest, BadFlagValuesNameTheFlag) {
  ServerConfig c;
  FlagOverrides f;
  f.listen = "nowhere";
  EXPECT_EQ(ApplyFlagOverrides(&c, f).message(),
            "--listen: \"nowhere\" is not host:port; expected host:port with a host name, an IPv4 "
            "address "
            "or an [IPv6] address, and a port from 0 to 65535 (0: any free port, which the daemon "
            "logs), like 0.0.0.0:50051");
  f = FlagOverrides{};
  f.max_queued_requests = 0;
  EXPECT_EQ(ApplyFlagOverrides(&c, f).message(),
            "--max_queued_requests: 0 is out of range; expected an integer from 1 to 1000000");
  f = FlagOverrides{};
  f.threads = -1;
  EXPECT_EQ(ApplyFlagOverrides(&c, f).message(),
            "--threads: -1 is out of range; expected an integer from 0 to 1024");
  f = FlagOverrides{};
  f.metrics_listen = "0.0.0.0:50051";
  EXPECT_EQ(
      ApplyFlagOverrides(&c, f).message(),
      "--metrics_listen: gRPC (0.0.0.0:50051) and metrics (0.0.0.0:50051) would share a port; "
      "expected different ports");
}

TEST(FlagOverridesTest, ModelFlagDefinesTheOnlyModel) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig("server:\n  threads: 1\n", "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  FlagOverrides f;
  f.model = kGguf;
  ASSERT_TRUE(ApplyFlagOverrides(&*c, f).ok());
  ASSERT_EQ(c->models.size(), 1u);
  EXPECT_EQ(c->models[0].name, "tiny_llama_f32");
  EXPECT_EQ(c->models[0].path, kGguf);
  EXPECT_EQ(c->models[0].key_path, "--model");
  EXPECT_EQ(c->models[0].device_map.Resolve("lm_head.weight")->device.ToString(), "cpu");
  EXPECT_TRUE(CheckDeviceMapCoversModel(c->models[0], c->source).ok());

  ServerConfig from_flags;  // no config file at all
  f.model = "tests/data/tiny_llama/";
  ASSERT_TRUE(ApplyFlagOverrides(&from_flags, f).ok());
  EXPECT_EQ(from_flags.models[0].name, "tiny_llama");
  ServerConfig smol;
  f.model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (std::filesystem::exists(*f.model)) {
    ASSERT_TRUE(ApplyFlagOverrides(&smol, f).ok());
    EXPECT_EQ(smol.models[0].name, "SmolLM2-135M-Instruct.Q4_1");
  }
}

TEST(FlagOverridesTest, ModelFlagErrors) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(OneModel(), "x.yaml");
  ASSERT_TRUE(c.ok());
  FlagOverrides f;
  f.model = kHfFolder;
  EXPECT_EQ(
      ApplyFlagOverrides(&*c, f).message(),
      "--model: x.yaml already lists 1 model(s) (m); expected --model only with a config file "
      "without models");
  ServerConfig empty;
  f.model = "models/nope.gguf";
  EXPECT_EQ(ApplyFlagOverrides(&empty, f).message().rfind(
                "--model: no such file or directory: models/nope.gguf; ", 0),
            0u);
  ServerConfig none;
  none.source = "x.yaml";
  EXPECT_EQ(ApplyFlagOverrides(&none, FlagOverrides{}).message(),
            "x.yaml: models: no model to serve; expected a models list in the config file or "
            "--model PATH");
  ScopedTempDir dir;
  const std::string odd = dir.File("my model.gguf");
  ASSERT_TRUE(WriteFile(odd, "x").ok());
  f.model = odd;
  EXPECT_EQ(
      ApplyFlagOverrides(&empty, f).message(),
      "--model: the file name \"my model\" is not a model name; expected 1 to 128 letters, digits "
      "and . _ - / :, starting with a letter or digit, or list the model in a config file under "
      "such a name");
}

}  // namespace
}  // namespace tierserve

namespace tierserve {
namespace {

// What CheckServable says of the one model of `yaml`: "" when servable.
std::string ServableError(const std::string& yaml) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(yaml, "x.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return "parse error";
  return std::string(CheckServable(c->models[0], "x.yaml").message());
}

class OffloadFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = std::filesystem::temp_directory_path() /
              ("tierserve_config_test_" + std::to_string(getpid()));
    std::filesystem::remove_all(folder_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(folder_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(folder_, ec);
  }
  std::filesystem::path folder_;
};

TEST_F(OffloadFolderTest, DiskPlacementWithAFolderIsServableAndTheFolderIsMade) {
  const std::string yaml = OneModel(absl::StrCat(
      "    device_map: {\"\": cpu, model.layers.0: disk}\n    offload_folder: ",
      (folder_ / "sub").string(), "\n"));
  EXPECT_EQ(ServableError(yaml), "");
  EXPECT_TRUE(std::filesystem::is_directory(folder_ / "sub"));
  // The probe file is gone again.
  EXPECT_TRUE(std::filesystem::is_empty(folder_ / "sub"));
  absl::StatusOr<ServerConfig> c = ParseServerConfig(yaml, "x.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(OffloadPath(c->models[0]), (folder_ / "sub" / "m.offload").string());
}

TEST_F(OffloadFolderTest, DiskPlacementWithoutAFolderIsRefused) {
  EXPECT_EQ(ServableError(OneModel("    device_map: {\"\": cpu, model.layers.0: disk}\n")),
            "x.yaml: models[0].device_map[\"model.layers.0\"]: disk placement needs a folder to write "
            "the weights to; set models[0].offload_folder");
}

TEST_F(OffloadFolderTest, AFolderThatCannotBeWrittenIsRefused) {
  if (geteuid() == 0) {
    // root writes through permissions: use a path under a regular file instead.
    std::filesystem::create_directories(folder_);
    std::ofstream(folder_ / "file") << "x";
    const std::string error = ServableError(
        OneModel(absl::StrCat("    offload_folder: ", (folder_ / "file" / "sub").string(), "\n")));
    EXPECT_EQ(error.rfind(absl::StrCat("x.yaml: models[0].offload_folder: cannot create the folder ",
                                       (folder_ / "file" / "sub").string(), ": "),
                          0),
              0u)
        << error;
    EXPECT_NE(error.find("expected a writable folder"), std::string::npos) << error;
    return;
  }
  std::filesystem::create_directories(folder_);
  std::filesystem::permissions(folder_, std::filesystem::perms::owner_read |
                                            std::filesystem::perms::owner_exec);
  const std::string error =
      ServableError(OneModel(absl::StrCat("    offload_folder: ", folder_.string(), "\n")));
  EXPECT_EQ(error.rfind(absl::StrCat("x.yaml: models[0].offload_folder: cannot write in ",
                                     folder_.string()),
                        0),
            0u)
      << error;
}

TEST(CheckServableTest, CudaPlacementIsRefusedWithTheKeyPath) {
  EXPECT_EQ(ServableError(OneModel("    device_map: {\"\": cpu, model.layers.1: cuda:0}\n")),
            "x.yaml: models[0].device_map[\"model.layers.1\"]: cuda:0 placement is not available "
            "yet (this build computes on the cpu or on simulated accelerators); expected cpu, disk "
            "or sim:N, or set models[0].accelerator: sim (or --accelerator=sim) to run this map on "
            "simulated devices");
}

TEST(CheckServableTest, AcceleratorSimRunsAGpuMapOnSimulatedDevices) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      OneModel("    accelerator: sim\n    device_map: {\"\": 0, model.layers.1: cuda:1}\n"), "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(ApplyFlagOverrides(&*c, FlagOverrides{}).ok());
  EXPECT_EQ(c->models[0].device_map.entries()[0].placement.device.ToString(), "sim:0");
  EXPECT_EQ(c->models[0].device_map.entries()[1].placement.device.ToString(), "sim:1");
  EXPECT_TRUE(CheckServable(c->models[0], "x.yaml").ok());

  // The flag does it for every model; a bad value names the flag.
  c = ParseServerConfig(OneModel("    device_map: {\"\": 0}\n"), "x.yaml");
  ASSERT_TRUE(c.ok());
  FlagOverrides flags;
  flags.accelerator = "sim";
  ASSERT_TRUE(ApplyFlagOverrides(&*c, flags).ok());
  EXPECT_EQ(c->models[0].device_map.entries()[0].placement.device.ToString(), "sim:0");
  flags.accelerator = "tpu";
  EXPECT_EQ(ApplyFlagOverrides(&*c, flags).message(),
            "--accelerator: \"tpu\" is not an accelerator; expected cuda or sim");
  EXPECT_EQ(ErrorOf(OneModel("    accelerator: gpu\n")),
            "x.yaml: models[0].accelerator: \"gpu\" is not an accelerator; expected cuda or sim");
}

TEST(CheckServableTest, MaxMemoryBudgetsSimDevicesAndTheCpu) {
  EXPECT_EQ(ServableError(OneModel("    device_map: auto\n    max_memory: {cuda:0: 1GiB}\n")),
            "x.yaml: models[0].max_memory[\"cuda:0\"]: cuda devices cannot be budgeted yet (this "
            "build computes on the cpu or on simulated accelerators); expected sim:N or cpu, or set "
            "models[0].accelerator: sim (or --accelerator=sim) to budget simulated devices");
  EXPECT_EQ(ServableError(OneModel("    device_map: auto\n    max_memory: {cpu: 1GiB, disk: 9GiB}\n")),
            "x.yaml: models[0].max_memory.disk: disk is not budgeted (what does not fit elsewhere "
            "goes there); expected sim:N or cpu");
  EXPECT_EQ(ServableError(OneModel("    device_map: sequential\n    max_memory: {sim:1: 1GiB, cpu: 2GiB}\n")),
            "");
  // accelerator: sim reads a GPU budget (and a bare index) as the sim's.
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      OneModel("    accelerator: sim\n    device_map: auto\n    max_memory: {0: 1GiB, cuda:1: 2GiB}\n"),
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(ApplyFlagOverrides(&*c, FlagOverrides{}).ok());
  EXPECT_EQ(c->models[0].max_memory[0].first.ToString(), "sim:0");
  EXPECT_EQ(c->models[0].max_memory[1].first.ToString(), "sim:1");
  EXPECT_TRUE(CheckServable(c->models[0], "x.yaml").ok());
}

TEST(ConfigTest, SimDeviceSettings) {
  absl::StatusOr<ServerConfig> c = ParseServerConfig(
      absl::StrCat("server:\n  sim_device: {memory: 64MiB, link_bandwidth: 2GB, "
                   "link_latency_us: 2.5}\n",
                   OneModel()),
      "x.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->sim_memory_bytes, 64 << 20);
  EXPECT_EQ(c->sim_link_bytes_per_second, 2'000'000'000);
  EXPECT_EQ(c->sim_link_latency_us, 2.5);
  EXPECT_NE(ErrorOf(absl::StrCat("server:\n  sim_device: {bandwidth: 2GB}\n", OneModel()))
                .find("x.yaml: server.sim_device.bandwidth: unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace tierserve
