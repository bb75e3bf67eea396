// Prefill and decode speed of one model at batch 1, next to the machine's
// memory read bandwidth measured in the same run, and the fraction of the
// decode roofline reached (bytes of weights read per token / time per token /
// bandwidth). Prints figures and ratios; asserts nothing.
// GCC 12's AVX-512 headers trip -Wuninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(int32_t, threads, 2, "Threads.");
ABSL_FLAG(int32_t, prompt_tokens, 128, "Prompt length for the prefill measurement.");
ABSL_FLAG(int32_t, decode_tokens, 64, "Decode steps measured.");
ABSL_FLAG(int32_t, repeats, 3, "Repeats; the best is reported.");
ABSL_FLAG(int64_t, bandwidth_mib, 1024, "Buffer size of the bandwidth probe, MiB.");

namespace tierserve {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Best-of-N read bandwidth over a buffer far larger than the caches, read by
// `pool` with wide loads, as the decode kernels read weights.
double MeasureReadBandwidth(ThreadPool* pool, int64_t bytes, int repeats) {
  const int64_t n = bytes / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  double best = 0;
  std::vector<float> sink(pool->num_threads() * 16);
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = Clock::now();
    pool->ParallelFor(
        n,
        [&](int64_t b, int64_t e) {
          // Eight independent add chains keep enough loads in flight to
          // saturate a core's share of the memory bandwidth.
#if defined(__AVX512F__)
          using V = __m512;
          constexpr int W = 16;
          auto zero = [] { return _mm512_setzero_ps(); };
          auto add = [](V a, const float* p) { return _mm512_add_ps(a, _mm512_loadu_ps(p)); };
#else
          using V = __m256;
          constexpr int W = 8;
          auto zero = [] { return _mm256_setzero_ps(); };
          auto add = [](V a, const float* p) { return _mm256_add_ps(a, _mm256_loadu_ps(p)); };
#endif
          V acc[8];
          for (V& a : acc) a = zero();
          int64_t i = b;
          for (; i + 8 * W <= e; i += 8 * W) {
            for (int j = 0; j < 8; ++j) acc[j] = add(acc[j], &buf[i + W * j]);
          }
          float tail = 0;
          for (; i < e; ++i) tail += buf[i];
          alignas(64) float out[8][W];
          for (int j = 0; j < 8; ++j) std::memcpy(out[j], &acc[j], sizeof(V));
          sink[(b * pool->num_threads() / n) * 16] = out[0][0] + out[7][W - 1] + tail;
        },
        1 << 16);
    const double s = Seconds(t0, Clock::now());
    if (r > 0) best = std::max(best, static_cast<double>(bytes) / s);  // first pass warms up
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int P = absl::GetFlag(FLAGS_prompt_tokens);
  const int D = absl::GetFlag(FLAGS_decode_tokens);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  ThreadPool pool(threads);

  const double bw =
      MeasureReadBandwidth(&pool, absl::GetFlag(FLAGS_bandwidth_mib) << 20, std::max(repeats, 5));

  auto loaded = LoadModel(absl::GetFlag(FLAGS_model), &pool);
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
  std::vector<float> logits;
  for (int r = 0; r < repeats; ++r) {
    auto cache = model.NewCache(P + D + 1);
    SequenceInput in{prompt, 0, cache.get(), false};
    auto t0 = Clock::now();
    if (auto s = model.Forward({&in, 1}, &logits); !s.ok()) {
      std::fprintf(stderr, "bench_generate: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    best_prefill = std::min(best_prefill, Seconds(t0, Clock::now()));
    int32_t tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    t0 = Clock::now();
    for (int i = 0; i < D; ++i) {
      SequenceInput step{{&tok, 1}, P + i, cache.get(), false};
      if (auto s = model.Forward({&step, 1}, &logits); !s.ok()) return 1;
      tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    best_decode = std::min(best_decode, Seconds(t0, Clock::now()));
  }
  const double prefill_tps = P / best_prefill;
  const double decode_tps = D / best_decode;
  const double bytes_per_token = static_cast<double>(model.WeightBytes());
  const double roofline_tps = bw / bytes_per_token;
  std::printf("model                 %s\n", absl::GetFlag(FLAGS_model).c_str());
  std::printf("threads               %d\n", threads);
  std::printf("read bandwidth        %.2f GB/s\n", bw / 1e9);
  std::printf("weight bytes / token  %.1f MB\n", bytes_per_token / 1e6);
  std::printf("prefill (%d tokens)   %.1f tokens/s\n", P, prefill_tps);
  std::printf("decode (%d tokens)    %.1f tokens/s\n", D, decode_tps);
  std::printf("decode roofline       %.1f tokens/s\n", roofline_tps);
  std::printf("roofline fraction     %.3f\n", decode_tps / roofline_tps);
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
