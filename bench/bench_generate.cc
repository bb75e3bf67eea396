// Prefill and decode speed of one model at batch 1, next to the machine's
// memory read bandwidth measured in the same run, and the fraction of the
// decode roofline reached (bytes of weights and KV cache read per token / time
// per token / bandwidth). Prints figures and ratios; asserts nothing.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "runtime/base/thread_pool.h"
#include "bench/read_bandwidth.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(int32_t, threads, 2, "Threads.");
ABSL_FLAG(int32_t, prompt_tokens, 128, "Prompt length for the prefill measurement.");
ABSL_FLAG(int32_t, decode_tokens, 64, "Decode steps measured.");
ABSL_FLAG(int32_t, repeats, 3, "Repeats; the best is reported.");
ABSL_FLAG(int64_t, bandwidth_mib, 1024, "Buffer size of the bandwidth probe, MiB.");
ABSL_FLAG(std::string, kv_cache_dtype, "fp32", "What the KV cache stores: fp32 or fp16 (kv_cache_dtype).");
ABSL_FLAG(std::string, activation_precision, "fp32",
          "What the GGUF block weights multiply: fp32 or int8 (activation_precision).");

namespace tierserve {
namespace {

using Clock = BenchClock;

double MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int P = absl::GetFlag(FLAGS_prompt_tokens);
  const int D = absl::GetFlag(FLAGS_decode_tokens);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  ThreadPool pool(threads);

  const double bw =
      MeasureReadBandwidth(&pool, absl::GetFlag(FLAGS_bandwidth_mib) << 20, std::max(repeats, 5));

  ModelLoadOptions options;
  options.pool = &pool;
  const std::optional<ActivationPrecision> activations =
      ParseActivationPrecision(absl::GetFlag(FLAGS_activation_precision));
  if (!activations.has_value()) {
    std::fprintf(stderr, "bench_generate: --activation_precision is fp32 or int8\n");
    return 2;
  }
  options.activations = *activations;
  const std::string kv_name = absl::GetFlag(FLAGS_kv_cache_dtype);
  const std::optional<DType> kv_parsed = ParseKvCacheDtype(kv_name);
  if (!kv_parsed.has_value()) {
    std::fprintf(stderr, "bench_generate: --kv_cache_dtype is fp32 or fp16\n");
    return 2;
  }
  const DType kv_dtype = *kv_parsed;
  auto loaded = LoadModel(absl::GetFlag(FLAGS_model), options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "bench_generate: %s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  CausalLM& model = *loaded->model;
  const ModelConfig& cfg = model.config();
  // A deterministic prompt of ordinary token ids.
  std::vector<int32_t> prompt(P);
  for (int i = 0; i < P; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % std::min<int64_t>(cfg.vocab_size, 30000));

  double best_prefill = 1e30, best_decode = 1e30;
  double decode_window[2] = {0, 0};  // the last repeat's decode, CLOCK_MONOTONIC seconds
  std::vector<float> logits;
  for (int r = 0; r < repeats; ++r) {
    auto cache = model.NewCache(P + D + 1, kv_dtype);
    SequenceInput in{prompt, 0, cache.get(), false};
    auto t0 = Clock::now();
    if (auto s = model.Forward({&in, 1}, &logits); !s.ok()) {
      std::fprintf(stderr, "bench_generate: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    best_prefill = std::min(best_prefill, Seconds(t0, Clock::now()));
    int32_t tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t0 = Clock::now();
    decode_window[0] = MonotonicSeconds();
    for (int i = 0; i < D; ++i) {
      SequenceInput step{{&tok, 1}, P + i, cache.get(), false};
      if (auto s = model.Forward({&step, 1}, &logits); !s.ok()) return 1;
      tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    best_decode = std::min(best_decode, Seconds(t0, Clock::now()));
    decode_window[1] = MonotonicSeconds();
  }
  const double prefill_tps = P / best_prefill;
  const double decode_tps = D / best_decode;
  // What one decode step must read: every weight, and the KV cache of every
  // earlier position (on average P + D / 2 of them).
  const double weight_bytes = static_cast<double>(model.WeightBytes());
  const double kv_bytes = 2.0 * cfg.num_layers * model.KvDim() * KvElementBytes(kv_dtype) * (P + D / 2.0);
  const double bytes_per_token = weight_bytes + kv_bytes;
  const double roofline_tps = bw / bytes_per_token;
  std::printf("model                 %s\n", absl::GetFlag(FLAGS_model).c_str());
  std::printf("threads               %d\n", threads);
  PrintBandwidth(bw, pool.num_threads());
  std::printf("kv cache              %s\n", kv_name.c_str());
  std::printf("weight bytes / token  %.1f MB\n", weight_bytes / 1e6);
  std::printf("KV bytes / token      %.1f MB (mean over the decode steps)\n", kv_bytes / 1e6);
  std::printf("prefill (%d tokens)   %.1f tokens/s\n", P, prefill_tps);
  std::printf("decode (%d tokens)    %.1f tokens/s\n", D, decode_tps);
  std::printf("decode roofline       %.1f tokens/s\n", roofline_tps);
  std::printf("roofline fraction     %.3f\n", decode_tps / roofline_tps);
  // The last decode's span on CLOCK_MONOTONIC, the clock of `perf record -k
  // monotonic`: bench/profile_decode.py keeps the samples inside it.
  std::printf("DECODE_WINDOW %.9f,%.9f\n", decode_window[0], decode_window[1]);
  // One machine-readable line for scripts.
  std::printf("RESULT prefill_tps=%.3f decode_tps=%.3f bandwidth_gbs=%.3f bytes_per_token=%.0f roofline_fraction=%.4f\n",
              prefill_tps, decode_tps, bw / 1e9, bytes_per_token, decode_tps / roofline_tps);
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
