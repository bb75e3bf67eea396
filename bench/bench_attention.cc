// Decode attention at long context, alone: one query row of SmolLM2's shape
// (9 heads sharing 3 KV heads of 64) over a paged KV cache of N positions,
// every layer, as the model runs it, for each KV cache type (--kv_cache_dtype).
// Prints time per token, the KV bytes it reads, and their rate against the
// read bandwidth probe of the same run.
#include <cstdio>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/read_bandwidth.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/attention.h"

ABSL_FLAG(int, threads, 2, "Threads.");
ABSL_FLAG(std::vector<std::string>, context, std::vector<std::string>({"128", "512", "2000", "4000"}),
          "Context lengths.");
ABSL_FLAG(int, layers, 30, "Layers.");
ABSL_FLAG(int, batch, 1, "Sequences, each with its own context.");
ABSL_FLAG(int, repeats, 20, "Timed tokens per context length; the median is reported.");
ABSL_FLAG(std::vector<std::string>, kv_cache_dtype, std::vector<std::string>({"fp32", "fp16"}),
          "KV cache element types: fp32, fp16.");

namespace tierserve {
namespace {

constexpr int64_t kHeads = 9, kKvHeads = 3, kHeadDim = 64, kKvDim = kKvHeads * kHeadDim;

int Main() {
  const int layers = absl::GetFlag(FLAGS_layers), batch_size = absl::GetFlag(FLAGS_batch);
  ThreadPool pool(absl::GetFlag(FLAGS_threads));
  const double bandwidth = MeasureReadBandwidth(&pool, int64_t{1} << 30, 3);
  std::printf("threads %d, batch %d, layers %d\n", pool.num_threads(), batch_size, layers);
  PrintBandwidth(bandwidth, pool.num_threads());
  std::printf("%6s %8s %12s %12s %10s %10s\n", "kv", "context", "ms/token", "KV MB/token", "GB/s", "of probe");
  for (const std::string& dtype_name : absl::GetFlag(FLAGS_kv_cache_dtype)) {
  const std::optional<DType> parsed = ParseKvCacheDtype(dtype_name);
  if (!parsed.has_value()) {
    std::fprintf(stderr, "--kv_cache_dtype: \"%s\" is not fp32 or fp16\n", dtype_name.c_str());
    return 2;
  }
  const DType dtype = *parsed;
  for (const std::string& c : absl::GetFlag(FLAGS_context)) {
    const int64_t n = std::stoll(c);
    KvBlockPool kv_pool(KvBlockPool::Options{layers, kKvDim, 16, batch_size * ((n + 15) / 16 + 1), dtype});
    std::vector<std::unique_ptr<PagedKvCache>> caches;
    std::vector<SequenceInput> batch;
    BatchRows rows;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int s = 0; s < batch_size; ++s) {
      caches.push_back(std::make_unique<PagedKvCache>(&kv_pool, kKvDim));
      caches.back()->Reserve(n);
      std::vector<float> key(kKvDim), value(kKvDim);
      for (int l = 0; l < layers; ++l) {
        for (int64_t p = 0; p < n; ++p) {
          for (int64_t i = 0; i < kKvDim; ++i) {
            key[i] = u(rng);
            value[i] = u(rng);
          }
          caches.back()->Store(l, p, key.data(), value.data());
        }
      }
      batch.push_back(SequenceInput{{}, n - 1, caches.back().get()});
      rows.tokens.push_back(0);
      rows.seq.push_back(s);
      rows.pos.push_back(n - 1);
    }
    std::vector<float> q(batch_size * kHeads * kHeadDim), out(q.size());
    for (float& x : q) x = u(rng);
    std::vector<double> times;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats) + 2; ++r) {
      const auto t0 = BenchClock::now();
      for (int l = 0; l < layers; ++l) {
        CausalAttention(CpuKernels(), rows, batch, l, q.data(), kHeads, kKvHeads, kHeadDim, out.data(), &pool);
      }
      if (r >= 2) times.push_back(Seconds(t0, BenchClock::now()));
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2];
    const double bytes = 2.0 * batch_size * layers * n * kKvDim * KvElementBytes(dtype);
    std::printf("%6s %8lld %12.3f %12.1f %10.2f %10.3f\n", dtype_name.c_str(), static_cast<long long>(n), t * 1e3,
                bytes / 1e6, bytes / t / 1e9, bytes / t / bandwidth);
  }
  }
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Main();
}
