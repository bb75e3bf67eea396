// The machine's memory read bandwidth as the decode kernels see it: a
// buffer far larger than the caches, read by the compute pool with wide
// loads. Shared by the benchmarks, so every roofline uses the same probe.
#ifndef TIERSERVE_BENCH_READ_BANDWIDTH_H_
#define TIERSERVE_BENCH_READ_BANDWIDTH_H_

// GCC 12's AVX-512 headers trip -Wuninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/base/aligned_bytes.h"
#include "runtime/base/thread_pool.h"

namespace tierserve {

using BenchClock = std::chrono::steady_clock;
inline double Seconds(BenchClock::time_point a, BenchClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Best-of-N read bandwidth over a buffer far larger than the caches, read by
// `pool` with wide loads, as the decode kernels read weights.
inline double MeasureReadBandwidth(ThreadPool* pool, int64_t bytes, int repeats) {
  const int64_t n = bytes / sizeof(float);
  // Cache-line aligned, as the weights are (AlignedBytes): from a plain
  // vector (16 bytes past a page) every 64-byte load splits across two lines,
  // which cost a third of one core's rate here.
  AlignedBytes storage(n * static_cast<int64_t>(sizeof(float)));
  float* const buf = reinterpret_cast<float*>(storage.data());
  std::fill(buf, buf + n, 1.0f);
  double best = 0;
  std::vector<float> sink(pool->num_threads() * 16);
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = BenchClock::now();
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
    const double s = Seconds(t0, BenchClock::now());
    if (r > 0) best = std::max(best, static_cast<double>(bytes) / s);  // first pass warms up
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

// Runs `likwid-bench -t <test> -W N:<size>:<threads>` and returns the number
// its first line starting with `field` (e.g. "MByte/s:") gives; 0 when
// likwid-bench is not installed or printed no such line.
inline double RunLikwidBench(const std::string& test, const std::string& size, int threads,
                             const char* field) {
  const std::string command =
      "likwid-bench -t " + test + " -W N:" + size + ":" + std::to_string(threads) + " 2>/dev/null";
  FILE* out = popen(command.c_str(), "r");
  if (out == nullptr) return 0;
  const std::string format = std::string(field) + " %lf";
  double value = 0;
  char line[512];
  while (std::fgets(line, sizeof(line), out) != nullptr) {
    if (std::sscanf(line, format.c_str(), &value) == 1) break;
  }
  pclose(out);
  return value;
}

// The outside yardstick: likwid-bench's load kernel (load_avx512, or
// load_avx without AVX-512) over 1 GB on `threads` threads, in bytes/s;
// 0 when likwid-bench is not installed or printed no rate.
inline double LikwidLoadBandwidth(int threads) {
#if defined(__AVX512F__)
  const char* kernel = "load_avx512";
#else
  const char* kernel = "load_avx";
#endif
  return RunLikwidBench(kernel, "1GB", threads, "MByte/s:") * 1e6;
}

// Prints the probe's rate and, when likwid-bench is installed, its rate and
// the ratio of the two.
inline void PrintBandwidth(double probe, int threads) {
  std::printf("read bandwidth        %.2f GB/s\n", probe / 1e9);
  if (const double likwid = LikwidLoadBandwidth(threads); likwid > 0) {
    std::printf("likwid-bench load     %.2f GB/s (probe / likwid %.3f)\n", likwid / 1e9, probe / likwid);
  }
}

}  // namespace tierserve

#endif  // TIERSERVE_BENCH_READ_BANDWIDTH_H_
