// One-thread speed of the int8-activation GGUF kernel (q8_dot_matmul: X
// quantized per 32 columns, integer dot products) beside today's
// fp32-activation kernel (repacked_matmul) on the same weights: one SmolLM2-135M
// decoder layer's linear shapes (q, k, v, o, gate, up, down), Q4_1 as the
// model stores them, and its Q8_0 output head, for M = 1 (decode), 8 to 32 (batched decode) and 64 to 256
// (prefill). The int8 time includes quantizing X, once per input as the model
// would (q, k, v share one; gate and up share one).
//
// Weights stream from memory as in a forward pass: each kernel cycles through
// enough copies to overflow the last-level cache (--cached: one copy, the
// compute limit). GB/s counts the weight bytes one pass reads; at M = 1 read it
// against the bandwidth line printed first (the benchmarks' probe, and
// likwid-bench beside it when installed). Prints a table; asserts nothing.
//
// Usage: bench_q8_kernels [--min_seconds=0.3] [--cached]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/read_bandwidth.h"
#include "bench/time_per_call.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/q8_dot_matmul.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/repacked_matmul.h"
#include "runtime/base/aligned_bytes.h"
#include "runtime/base/thread_pool.h"

namespace tierserve {
namespace {

constexpr int64_t kStreamBytes = int64_t{96} << 20;  // > the last-level cache

struct Shape {
  const char* name;
  int64_t n, k;
  int input;  // which quantized input it reads (shared inputs are quantized once)
};
// SmolLM2-135M: hidden 576, 9 heads / 3 KV heads of 64, MLP 1536.
constexpr Shape kLayer[] = {{"q", 576, 576, 0},   {"k", 192, 576, 0},    {"v", 192, 576, 0},
                            {"o", 576, 576, 1},   {"gate", 1536, 576, 2}, {"up", 1536, 576, 2},
                            {"down", 576, 1536, 3}};
constexpr Shape kHead[] = {{"lm_head", 49152, 576, 0}};

// One matrix in both layouts.
struct Matrix {
  Shape shape;
  AlignedBytes fp32_layout;  // repacked_matmul
  AlignedBytes q8_layout;    // q8_dot_matmul
};

std::vector<Matrix> MakeCopy(const Shape* shapes, int count, DType type, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<Matrix> out;
  for (int s = 0; s < count; ++s) {
    const Shape& sh = shapes[s];
    const int64_t row_bytes = sh.k / 32 * BlockBytes(type);
    std::vector<uint8_t> rows(static_cast<size_t>(sh.n * row_bytes));
    std::vector<float> v(static_cast<size_t>(sh.k));
    for (int64_t r = 0; r < sh.n; ++r) {
      for (float& x : v) x = dist(*rng);
      if (type == DType::kQ8_0) QuantizeRowQ8_0(v.data(), &rows[r * row_bytes], sh.k);
      else QuantizeRowQ4_1(v.data(), &rows[r * row_bytes], sh.k);
    }
    Matrix m{sh, AlignedBytes(static_cast<int64_t>(rows.size())), AlignedBytes(static_cast<int64_t>(rows.size()))};
    cpu::RepackRows(type, rows.data(), row_bytes, sh.n, sh.k, m.fp32_layout.data());
    cpu::RepackQ8Dot(type, rows.data(), row_bytes, sh.n, sh.k, m.q8_layout.data());
    out.push_back(std::move(m));
  }
  return out;
}


void Run(const char* label, const Shape* shapes, int count, DType type, bool cached, double min_seconds) {
  std::mt19937 rng(7);
  int64_t bytes = 0;
  for (int s = 0; s < count; ++s) bytes += shapes[s].n * shapes[s].k / 32 * BlockBytes(type);
  const int copies = cached ? 1 : static_cast<int>(std::max<int64_t>(1, kStreamBytes / bytes + 1));
  std::vector<std::vector<Matrix>> w;
  for (int c = 0; c < copies; ++c) w.push_back(MakeCopy(shapes, count, type, &rng));
  std::printf("\n%s (%s, %.2f MB of weights, %d cop%s)\n", label, std::string(DTypeName(type)).c_str(), bytes / 1e6,
              copies, copies == 1 ? "y" : "ies");
  std::printf("%6s %14s %14s %10s %10s %8s\n", "M", "fp32-act ms", "int8-act ms", "fp32 GB/s", "int8 GB/s",
              "speedup");
  for (int64_t M : {1, 4, 8, 16, 32, 64, 256}) {
    int64_t max_k = 0, max_n = 0;
    for (int s = 0; s < count; ++s) {
      max_k = std::max(max_k, shapes[s].k);
      max_n = std::max(max_n, shapes[s].n);
    }
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(M * max_k));
    for (float& v : x) v = dist(rng);
    std::vector<float> y(static_cast<size_t>(M * max_n));
    cpu::Q8Activations q[4];
    const double fp32 = TimePerCall(
        [&](int c) {
          for (int s = 0; s < count; ++s) {
            const Shape& sh = shapes[s];
            cpu::RepackedMatMulF32(type, x.data(), sh.k, w[c][s].fp32_layout.data(), y.data(), sh.n, M, sh.k, 0,
                                   sh.n);
          }
        },
        copies, min_seconds);
    const double int8 = TimePerCall(
        [&](int c) {
          int quantized = -1;
          for (int s = 0; s < count; ++s) {
            const Shape& sh = shapes[s];
            if (sh.input != quantized) {
              cpu::QuantizeQ8(x.data(), sh.k, M, sh.k, &q[sh.input]);
              quantized = sh.input;
            }
            cpu::Q8DotMatMul(type, q[sh.input], w[c][s].q8_layout.data(), y.data(), sh.n, M, sh.k, 0, sh.n);
          }
        },
        copies, min_seconds);
    std::printf("%6lld %14.4f %14.4f %10.2f %10.2f %7.2fx\n", static_cast<long long>(M), fp32 * 1e3, int8 * 1e3,
                bytes / fp32 / 1e9, bytes / int8 / 1e9, fp32 / int8);
  }
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  double min_seconds = 0.3;
  bool cached = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--min_seconds=", 14) == 0) min_seconds = std::atof(argv[i] + 14);
    else if (std::strcmp(argv[i], "--cached") == 0) cached = true;
    else {
      std::fprintf(stderr, "usage: bench_q8_kernels [--min_seconds=0.3] [--cached]\n");
      return 2;
    }
  }
  using namespace tierserve;
  std::printf("bench_q8_kernels: 1 thread, %s path%s\n", cpu::CpuPathName(cpu::BestCpuPath()),
              cached ? ", weights cached" : "");
  ThreadPool one(1);
  PrintBandwidth(MeasureReadBandwidth(&one, int64_t{512} << 20, 3), 1);
  Run("one SmolLM2 decoder layer", kLayer, static_cast<int>(std::size(kLayer)), DType::kQ4_1, cached, min_seconds);
  Run("SmolLM2 output head", kHead, 1, DType::kQ8_0, cached, min_seconds);
  return 0;
}
