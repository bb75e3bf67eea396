// One-thread speed of the bitsandbytes-format kernels (LLM.int8 and 4-bit
// NF4) beside the fp32 matmul of the same shape, for SmolLM2-135M's linear
// shapes and batch sizes from decode (M = 1) to prefill (M = 256).
//
// Weights are streamed from memory as in a real forward pass: each kernel
// cycles through enough copies of its weight to overflow the last-level
// cache. GB/s counts the weight bytes one call reads (int8: cb + scb; nf4:
// packed + absmax, or qabsmax + absmax2 when double-quantized; fp32: W), so
// at M = 1 it is to be read against the machine's memory bandwidth.
// Prints a table; asserts nothing.
//
// Usage: bench_bnb_kernels [--min_seconds=0.2] [--quick] [--cached] [--path=P]
// --path runs the int8 and 4-bit kernels on path P (portable, avx2,
// avx512vnni, avx512bf16; the CPU must have it) instead of the best one: an
// AVX2-only CPU's kernels, timed on this one.
// GCC 12's AVX-512 headers trip -Wuninitialized once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/time_per_call.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fourbit_matmul.h"
#include "kernels/cpu/int8_matmul.h"
#include "kernels/cpu/matmul.h"

namespace tierserve::cpu {
namespace {

using Clock = std::chrono::steady_clock;

constexpr float kNf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                            0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                            0.7229568362236023f, 1.0f};
constexpr int64_t kStreamBytes = int64_t{96} << 20;  // > the 32 MiB L3 of these machines
constexpr int64_t kBlock = 64;


// --cached: one copy, so weights that fit stay in cache (the compute limit).
bool g_cached = false;
// --path: the int8 and 4-bit kernels' path.
CpuPath g_path = BestCpuPath();

int CopiesFor(int64_t bytes) {
  return g_cached ? 1 : static_cast<int>(std::max<int64_t>(1, kStreamBytes / bytes + 1));
}

// One thread's streaming read bandwidth over 512 MiB (best of 3): the M = 1
// roofline for the GB/s column.
double ReadBandwidth() {
  const int64_t n = (int64_t{512} << 20) / 4;
  std::vector<float> buf(n, 1.0f);
  double best = 0;
  float sink = 0;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = Clock::now();
    __m256 acc[8];
    for (__m256& a : acc) a = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 64)
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_loadu_ps(&buf[i + 8 * j]));
    for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    sink += _mm256_cvtss_f32(acc[0]);
    best = std::max(best, static_cast<double>(n) * 4 / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return sink > 0 ? best * 1e-9 : 0;
}

struct Row {
  std::string kernel;
  double seconds = 0;
  double weight_bytes = 0;
};

void BenchShape(int64_t N, int64_t K, const std::vector<int64_t>& ms, double min_seconds) {
  std::mt19937 rng(static_cast<unsigned>(N * 7 + K));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  std::vector<float> x(max_m * K);
  for (float& v : x) v = normal(rng);
  std::vector<float> y(max_m * N);

  // fp32.
  const int64_t f32_bytes = N * K * 4;
  const int f32_copies = CopiesFor(f32_bytes);
  std::vector<std::vector<float>> wf(f32_copies, std::vector<float>(N * K));
  for (auto& w : wf)
    for (float& v : w) v = normal(rng);

  // int8 (cb + scb); the aux row sums are computed once per copy, as at load.
  const int64_t i8_bytes = N * K + N * 4;
  const int i8_copies = CopiesFor(i8_bytes);
  std::vector<std::vector<int8_t>> cb(i8_copies, std::vector<int8_t>(N * K));
  std::vector<float> scb(N, 0.02f);
  std::vector<std::vector<int32_t>> row_sums(i8_copies, std::vector<int32_t>(N));
  std::vector<Int8WeightAux> aux;
  for (int c = 0; c < i8_copies; ++c) {
    for (int8_t& v : cb[c]) v = static_cast<int8_t>(byte(rng) % 255 - 127);
    Int8RowSums(cb[c].data(), N, K, row_sums[c].data());
    aux.push_back(Int8WeightAux{row_sums[c].data()});
  }
  Int8Activations act;
  act.Resize(max_m, K);

  // NF4, blocksize 64, plain and double-quantized views of the same bytes.
  const int64_t nblocks = N * K / kBlock;
  const int64_t nf4_plain_bytes = N * K / 2 + nblocks * 4;
  const int64_t nf4_dq_bytes = N * K / 2 + nblocks + (nblocks + 255) / 256 * 4;
  const int nf4_copies = CopiesFor(N * K / 2);
  std::vector<std::vector<uint8_t>> packed(nf4_copies, std::vector<uint8_t>(N * K / 2));
  for (auto& p : packed)
    for (uint8_t& b : p) b = static_cast<uint8_t>(byte(rng));
  std::vector<float> absmax(nblocks, 0.05f), absmax2((nblocks + 255) / 256, 0.01f), code2(256);
  std::vector<uint8_t> qabsmax(nblocks);
  for (uint8_t& q : qabsmax) q = static_cast<uint8_t>(byte(rng));
  for (int j = 0; j < 256; ++j) code2[j] = (j - 127.5f) / 128.0f;
  auto view = [&](int copy, bool dq) {
    FourBitWeight w;
    w.packed = packed[copy].data();
    w.rows = N;
    w.cols = K;
    w.blocksize = kBlock;
    w.code = kNf4;
    if (dq) {
      w.qabsmax = qabsmax.data();
      w.absmax2 = absmax2.data();
      w.code2 = code2.data();
      w.offset = 0.05f;
    } else {
      w.absmax = absmax.data();
    }
    return w;
  };

  for (const int64_t M : ms) {
    std::vector<Row> rows;
    rows.push_back({"fp32", TimePerCall([&](int c) {
                      MatMulF32(x.data(), K, wf[c].data(), y.data(), N, M, K, 0, N);
                    }, f32_copies, min_seconds), static_cast<double>(f32_bytes)});
    QuantizeActivationsInt8OnPath(g_path, x.data(), M, K, 6.0f, &act);
    rows.push_back({"int8", TimePerCall([&](int c) {
                      Int8MatMulOnPath(g_path, act, cb[c].data(), scb.data(), aux[c], y.data(), N, M, K, 0, N);
                    }, i8_copies, min_seconds), static_cast<double>(i8_bytes)});
    const double quantize = TimePerCall(
        [&](int) { QuantizeActivationsInt8OnPath(g_path, x.data(), M, K, 6.0f, &act); }, 1, min_seconds / 4);
    rows.push_back({"int8 quantize X", quantize, 0});
    for (const bool dq : {false, true}) {
      for (const ComputeDType cd : {ComputeDType::kFp32, ComputeDType::kFp16, ComputeDType::kBf16}) {
        const std::string name = std::string(dq ? "nf4-dq " : "nf4 ") +
                                 (cd == ComputeDType::kFp32 ? "fp32" : cd == ComputeDType::kFp16 ? "fp16" : "bf16");
        rows.push_back({name, TimePerCall([&](int c) {
                          const FourBitWeight w = view(c, dq);
                          FourBitMatMulOnPath(g_path, w, x.data(), K, y.data(), N, M, 0, N, cd);
                        }, nf4_copies, min_seconds),
                        static_cast<double>(dq ? nf4_dq_bytes : nf4_plain_bytes)});
      }
    }
    const double fp32_seconds = rows[0].seconds;
    for (const Row& r : rows) {
      const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
      if (r.weight_bytes == 0) {
        std::printf("%6lld x %-5lld %4lld  %-16s %10.1f us\n", static_cast<long long>(N),
                    static_cast<long long>(K), static_cast<long long>(M), r.kernel.c_str(), r.seconds * 1e6);
        continue;
      }
      std::printf("%6lld x %-5lld %4lld  %-16s %10.1f us %8.1f GB/s %8.1f GFLOP/s %6.2fx fp32\n",
                  static_cast<long long>(N), static_cast<long long>(K), static_cast<long long>(M),
                  r.kernel.c_str(), r.seconds * 1e6, r.weight_bytes / r.seconds * 1e-9,
                  flops / r.seconds * 1e-9, fp32_seconds / r.seconds);
    }
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace tierserve::cpu

// The path named `name`, if this CPU has it.
bool PathNamed(const char* name, tierserve::cpu::CpuPath* path) {
  using tierserve::cpu::CpuPath;
  for (const CpuPath p : {CpuPath::kPortable, CpuPath::kAvx2, CpuPath::kAvx512Vnni, CpuPath::kAvx512Bf16}) {
    if (std::strcmp(name, tierserve::cpu::CpuPathName(p)) == 0 && tierserve::cpu::CpuPathSupported(p)) {
      *path = p;
      return true;
    }
  }
  return false;
}

int main(int argc, char** argv) {
  double min_seconds = 0.2;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--min_seconds=", 14) == 0) min_seconds = std::atof(argv[i] + 14);
    else if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--cached") == 0) tierserve::cpu::g_cached = true;
    else if (std::strncmp(argv[i], "--path=", 7) == 0 && PathNamed(argv[i] + 7, &tierserve::cpu::g_path)) continue;
    else {
      std::fprintf(stderr,
                   "usage: %s [--min_seconds=S] [--quick] [--cached] [--path=portable|avx2|avx512vnni|avx512bf16]\n"
                   "(--path: one this CPU has)\n",
                   argv[0]);
      return 2;
    }
  }
  using tierserve::cpu::CpuPathName;
  std::printf("one thread, path %s (fp32: the best); weights %s; speedup = fp32 time / kernel time\n",
              CpuPathName(tierserve::cpu::g_path),
              tierserve::cpu::g_cached ? "reused (cache-resident when they fit)" : "streamed (> L3)");
  std::printf("memory read bandwidth, one thread: %.1f GB/s\n", tierserve::cpu::ReadBandwidth());
  std::printf("%-14s %4s  %-16s %13s %13s %16s %10s\n", "N x K", "M", "kernel", "time", "weights",
              "compute", "vs fp32");
  const std::vector<int64_t> ms = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32, 256};
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {576, 576}, {192, 576}, {1536, 576}, {576, 1536}, {49152, 576}};
  for (const auto& [N, K] : shapes) tierserve::cpu::BenchShape(N, K, ms, min_seconds);
  return 0;
}
