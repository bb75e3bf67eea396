// Aggregate decode throughput of one model under continuous batching: B
// sequences, each with its own KV cache and a prompt already prefilled, and
// each timed step ONE Forward giving every sequence one new token. Printed
// per precision and batch size: tokens/s of all sequences, the ratio to
// batch 1, the GFLOP/s that rate implies, and its fraction of the machine's
// fp32 FMA peak measured in the same run (a register-only loop of
// _mm256_fmadd_ps on every thread). Beside it, the memory-bandwidth roofline
// as bench_generate computes it (a step reads every weight once whatever the
// batch, so the roofline in tokens/s is B x bandwidth / weight bytes).
// Asserts nothing.
//
// The FMA peak is the ceiling of fp32 math: the stored GGUF (Q4_1) and 4-bit
// kernels decode weights to fp32 in registers and multiply with FMAs, so it
// bounds them (decoding costs instructions the peak does not count). int8
// multiplies in integers, whose peak differs; its fraction is indicative.
//
// --op_times splits a step's wall time by operation (through the model's
// activation tap) and prints the ceiling the rest leaves: the fraction of the
// peak the step would reach with the products at the peak.
//
//   bench_batch --model models/SmolLM2-135M-Instruct.Q4_1.gguf --batches 1,8,32
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "bench/read_bandwidth.h"
#include "kernels/cpu/cpu_features.h"
#include "runtime/base/status_macros.h"
#include "runtime/kv/kv_block_pool.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(int32_t, threads, 2, "Threads of the compute pool and of the FMA probe.");
ABSL_FLAG(std::string, batches, "1,8,32", "Batch sizes, comma-separated (the first is the ratio's base).");
ABSL_FLAG(std::string, precisions, "stored,int8",
          "Precisions, comma-separated: stored (the GGUF as stored), stored_int8_act (as stored, "
          "multiplying int8 activations: activation_precision int8), fp32, int8 (LLM.int8), "
          "nf4, fp4 (bitsandbytes 4-bit, no double quant).");
ABSL_FLAG(std::string, kv_cache_dtype, "fp32", "What the KV caches store: fp32 or fp16 (kv_cache_dtype).");
ABSL_FLAG(int32_t, prompt_tokens, 64, "Prompt length of each sequence (prefilled, not timed).");
ABSL_FLAG(int32_t, decode_steps, 32, "Decode steps timed.");
ABSL_FLAG(int32_t, repeats, 3, "Repeats; the best is reported.");
ABSL_FLAG(int64_t, bandwidth_mib, 1024, "Buffer size of the bandwidth probe, MiB.");
ABSL_FLAG(int64_t, fma_rounds, 50'000'000, "Rounds of the FMA probe per thread and repeat.");
ABSL_FLAG(bool, op_times, false,
          "After each timed batch size, decode once more with the model's activation tap reading the clock "
          "between operations, and print where a step's time went: the products (and their share of the FMA "
          "peak), attention, the rest (Llama-family models).");

namespace tierserve {
namespace {

// Independent FMA chains per thread: enough to fill two FMA pipes at 4
// cycles' latency with a margin (8 in flight saturate them), few enough to
// stay in registers with the two operands.
constexpr int kFmaChains = 12;

// fp32 GFLOP/s of FMA chains, over wall time and over the CPU time the
// threads were given: when other processes share the cores the first drops,
// the second is what the cores can do.
struct FmaRate {
  double wall_gflops = 0;
  double cpu_gflops = 0;
};

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// One thread running `rounds` rounds of kFmaChains independent
// acc = acc * a + b chains of vector V (8 or 16 lanes), from registers only.
// a slightly below 1 and b tiny keep every value finite and normal forever.
template <typename V, typename Set1, typename Fma, typename Add, typename First>
FmaRate FmaLoopOf(int64_t rounds, Set1 set1, Fma fma, Add add, First first) {
  constexpr double kFlopPerFma = 2.0 * sizeof(V) / sizeof(float);  // lanes x (multiply + add)
  V acc[kFmaChains];
#pragma GCC unroll 16
  for (int j = 0; j < kFmaChains; ++j) acc[j] = set1(1.0f + 0.01f * j);
  const V a = set1(0.9999999f), b = set1(1e-7f);
  const auto t0 = BenchClock::now();
  const double c0 = ThreadCpuSeconds();
  for (int64_t i = 0; i < rounds; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kFmaChains; ++j) acc[j] = fma(acc[j], a, b);
  }
  const double cpu = ThreadCpuSeconds() - c0;
  const double wall = Seconds(t0, BenchClock::now());
  V sum = acc[0];
#pragma GCC unroll 16
  for (int j = 1; j < kFmaChains; ++j) sum = add(sum, acc[j]);
  volatile float keep = first(sum);  // the chains must be computed
  (void)keep;
  const double gflop = static_cast<double>(rounds) * kFmaChains * kFlopPerFma / 1e9;
  return FmaRate{gflop / wall, gflop / cpu};
}

__attribute__((target("avx2,fma"))) FmaRate FmaLoopAvx2(int64_t rounds) {
  return FmaLoopOf<__m256>(
      rounds, [](float x) __attribute__((target("avx2,fma"))) { return _mm256_set1_ps(x); },
      [](__m256 x, __m256 y, __m256 z) __attribute__((target("avx2,fma"))) { return _mm256_fmadd_ps(x, y, z); },
      [](__m256 x, __m256 y) __attribute__((target("avx2,fma"))) { return _mm256_add_ps(x, y); },
      [](__m256 x) __attribute__((target("avx2,fma"))) { return _mm256_cvtss_f32(x); });
}

__attribute__((target("avx512f"))) FmaRate FmaLoopAvx512(int64_t rounds) {
  return FmaLoopOf<__m512>(
      rounds, [](float x) __attribute__((target("avx512f"))) { return _mm512_set1_ps(x); },
      [](__m512 x, __m512 y, __m512 z) __attribute__((target("avx512f"))) { return _mm512_fmadd_ps(x, y, z); },
      [](__m512 x, __m512 y) __attribute__((target("avx512f"))) { return _mm512_add_ps(x, y); },
      [](__m512 x) __attribute__((target("avx512f"))) { return _mm512_cvtss_f32(x); });
}

// The widest FMA the CPU has: the kernels use AVX-512 where it exists, and
// on cores with full-width 512-bit pipes it doubles the AVX2 peak.
bool UseAvx512() { return cpu::CpuPathSupported(cpu::CpuPath::kAvx512Vnni); }

FmaRate FmaLoop(int64_t rounds) { return UseAvx512() ? FmaLoopAvx512(rounds) : FmaLoopAvx2(rounds); }

// likwid-bench's peakflops kernel of the same width on `threads` threads, in
// GFLOP/s: the outside yardstick; 0 without likwid-bench.
double LikwidPeakGflops(int threads) {
  return RunLikwidBench(UseAvx512() ? "peakflops_sp_avx512_fma" : "peakflops_sp_avx_fma", "64kB", threads,
                        "MFlops/s:") / 1e3;
}

// The sum over `threads` std::threads of each one's own FmaLoop, the threads
// started together; the best of `repeats` by wall time.
FmaRate FmaPeak(int threads, int64_t rounds, int repeats) {
  FmaRate best;
  for (int r = 0; r < repeats; ++r) {
    std::vector<FmaRate> rates(threads);
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) {
        }
        rates[t] = FmaLoop(rounds);
      });
    }
    go.store(true, std::memory_order_release);
    for (std::thread& w : workers) w.join();
    FmaRate sum;
    for (const FmaRate& f : rates) {
      sum.wall_gflops += f.wall_gflops;
      sum.cpu_gflops += f.cpu_gflops;
    }
    if (sum.wall_gflops > best.wall_gflops) best = sum;
  }
  return best;
}

// FLOPs of one decode token (a multiply-add is 2 FLOPs):
//   matmul   2 x (L x (H*qd + 2*H*kvd + qd*H + 3*H*I) + V*H)
//              q, k, v, o projections; gate, up, down; the output head
//   attention 2 x 2 x L x nh x hd x ctx      (q.k scores and the weighted sum of v)
// with qd = nh*hd, kvd = nkv*hd. Norms, RoPE, SiLU, softmax and biases are
// left out (O(H) or O(nh x ctx) per layer).
double MatmulFlopsPerToken(const ModelConfig& c) {
  const double H = c.hidden_size, I = c.intermediate_size, L = c.num_layers, V = c.vocab_size;
  const double qd = static_cast<double>(c.num_heads * c.head_dim), kvd = static_cast<double>(c.num_kv_heads * c.head_dim);
  return 2 * (L * (H * qd + 2 * H * kvd + qd * H + 3 * H * I) + V * H);
}
double FlopsPerToken(const ModelConfig& c, double ctx) {
  return MatmulFlopsPerToken(c) + 2.0 * 2.0 * c.num_layers * static_cast<double>(c.num_heads * c.head_dim) * ctx;
}

// Where a forward pass's time goes, from the activation tap: each tensor the
// model hands over closes the interval since the one before (or since
// Start), charged to the operation that computed it. The tap runs on the
// calling thread after each operation has finished on every thread.
class OpTimer final : public ActivationTap {
 public:
  enum Op { kProducts, kAttention, kRopeKvStore, kNormsResidualsSilu, kOther, kNumOps };
  static constexpr const char* kNames[kNumOps] = {
      "products (q/k/v, o, gate/up, down, head)", "attention", "rotary + KV store",
      "norms, residuals, SiLU", "the rest (embedding, the tap, between calls)"};

  void Start() { last_ = BenchClock::now(); }
  void Observe(std::string_view name, int64_t layer, const float*, int64_t, int64_t) override {
    const auto now = BenchClock::now();
    seconds_[OpOf(name, layer)] += Seconds(last_, now);
    last_ = now;
  }
  double seconds(Op op) const { return seconds_[op]; }

 private:
  // The operation whose result `name` is (names as runtime/model/llama.cc
  // taps them). result_norm arrives after the head has run on the final
  // norm's rows; Kcur and Vcur after Qcur, from the same products; layer 0's
  // attn_norm after the embedding too.
  static Op OpOf(std::string_view name, int64_t layer) {
    if (name == "Qcur" || name == "attn_out" || name == "ffn_gate" || name == "ffn_out" || name == "result_norm") {
      return kProducts;
    }
    if (name == "kqv_out") return kAttention;
    if (name == "Qrope") return kRopeKvStore;
    if ((name == "attn_norm" && layer > 0) || name == "ffn_inp" || name == "ffn_swiglu" || name == "l_out") {
      return kNormsResidualsSilu;
    }
    return kOther;
  }
  BenchClock::time_point last_;
  double seconds_[kNumOps] = {};
};

// Seconds of the fastest of `repeats` runs of `steps` batched decode steps
// over `batch` freshly prefilled sequences. Only the Forward calls are timed
// (the argmax feeding each sequence its next token is not).
// With `timer`, the model's activation tap is the timer for the timed steps,
// started before each.
absl::StatusOr<double> DecodeSeconds(CausalLM& model, int batch, int P, int steps, int repeats,
                                     OpTimer* timer = nullptr) {
  const ModelConfig& cfg = model.config();
  const int64_t V = cfg.vocab_size;
  std::vector<std::vector<int32_t>> prompts(batch, std::vector<int32_t>(P));
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < P; ++i)
      prompts[b][i] = static_cast<int32_t>((i * 7919 + 13 + 101 * b) % std::min<int64_t>(V, 30000));
  double best = 1e30;
  std::vector<float> logits;
  std::vector<int32_t> tok(batch);
  auto pick = [&] {
    for (int b = 0; b < batch; ++b)
      tok[b] = static_cast<int32_t>(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) -
                                    (logits.begin() + b * V));
  };
  for (int r = 0; r < repeats; ++r) {
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<SequenceInput> in(batch);
    for (int b = 0; b < batch; ++b) {
      caches.push_back(
          model.NewCache(P + steps + 1, *ParseKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype))));
      in[b] = SequenceInput{prompts[b], 0, caches.back().get(), false};
    }
    if (absl::Status s = model.Forward(in, &logits); !s.ok()) return s;
    pick();
    double seconds = 0;
    for (int i = 0; i < steps; ++i) {
      for (int b = 0; b < batch; ++b) in[b] = SequenceInput{{&tok[b], 1}, P + i, caches[b].get(), false};
      if (timer != nullptr) {
        TS_RETURN_IF_ERROR(model.SetActivationTap(timer));
        timer->Start();
      }
      const auto t0 = BenchClock::now();
      const absl::Status forward = model.Forward(in, &logits);
      if (timer != nullptr) TS_RETURN_IF_ERROR(model.SetActivationTap(nullptr));
      TS_RETURN_IF_ERROR(forward);
      seconds += Seconds(t0, BenchClock::now());
      pick();
    }
    best = std::min(best, seconds);
  }
  return best;
}

// Prints where the `steps` steps of `batch` sequences timed through `timer`
// (`seconds` in all) went, the products' GFLOP/s against the FMA peak, and,
// when they are fp32 FMAs (`fp32_products`), what the step would take, and
// reach of the peak, with the products at that peak and everything else as
// measured.
void PrintOpTimes(const std::string& precision, int batch, int steps, const OpTimer& timer, double seconds,
                  double matmul_flops, double flops, double peak_gflops, bool fp32_products) {
  std::printf("  where batch %d's step went (one more run of %d steps, the activation tap reading the clock "
              "after each operation): %.2f ms/step\n", batch, steps, seconds / steps * 1e3);
  double named = 0;
  for (int op = 0; op < OpTimer::kOther; ++op) named += timer.seconds(static_cast<OpTimer::Op>(op));
  for (int op = 0; op < OpTimer::kNumOps; ++op) {
    const double t = op == OpTimer::kOther ? seconds - named : timer.seconds(static_cast<OpTimer::Op>(op));
    std::printf("    %-46s %8.2f ms %6.1f%%", OpTimer::kNames[op], t / steps * 1e3, 100 * t / seconds);
    if (op == OpTimer::kProducts) {
      const double gflops = static_cast<double>(batch) * steps * matmul_flops / t / 1e9;
      std::printf("   %.1f GFLOP/s, %.1f%% of peak", gflops, 100 * gflops / peak_gflops);
    }
    std::printf("\n");
  }
  const double products = timer.seconds(OpTimer::kProducts);
  const double at_peak = seconds - products + static_cast<double>(batch) * steps * matmul_flops / (peak_gflops * 1e9);
  const double ceiling = static_cast<double>(batch) * steps * flops / at_peak / 1e9 / peak_gflops;
  if (fp32_products) {
    std::printf("    with the products at the FMA peak and the rest as measured: %.2f ms/step, %.1f%% of peak\n",
                at_peak / steps * 1e3, 100 * ceiling);
  } else {
    std::printf("    (integer products: the fp32 FMA peak does not bound them)\n");
  }
  std::printf("OPTIMES precision=%s batch=%d step_ms=%.3f products_ms=%.3f attention_ms=%.3f rope_kv_store_ms=%.3f "
              "norms_residuals_silu_ms=%.3f rest_ms=%.3f products_peak_fraction=%.4f",
              precision.c_str(), batch, seconds / steps * 1e3, products / steps * 1e3,
              timer.seconds(OpTimer::kAttention) / steps * 1e3, timer.seconds(OpTimer::kRopeKvStore) / steps * 1e3,
              timer.seconds(OpTimer::kNormsResidualsSilu) / steps * 1e3, (seconds - named) / steps * 1e3,
              static_cast<double>(batch) * steps * matmul_flops / products / 1e9 / peak_gflops);
  if (fp32_products) std::printf(" ceiling_peak_fraction=%.4f", ceiling);
  std::printf("\n");
}

absl::StatusOr<ModelLoadOptions> OptionsFor(const std::string& p, ThreadPool* pool) {
  ModelLoadOptions o;
  o.pool = pool;
  if (p == "stored") return o;
  if (p == "stored_int8_act") {
    o.activations = ActivationPrecision::kInt8;
    return o;
  }
  if (p == "fp32") {
    o.device_map = DeviceMap::Everything(Placement{Location{}, Precision::kFp32}, "bench", "precision");
  } else if (p == "int8") {
    o.quantization.load_in_8bit = true;
  } else if (p == "nf4" || p == "fp4") {
    o.quantization.load_in_4bit = true;
    o.quantization.bnb_4bit_quant_type =
        p == "nf4" ? QuantizationConfig::QuantType::kNf4 : QuantizationConfig::QuantType::kFp4;
  } else {
    return absl::InvalidArgumentError("--precisions: unknown precision \"" + p +
                                      "\"; allowed: stored, stored_int8_act, fp32, int8, nf4, fp4");
  }
  return o;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "bench_batch: %s\n", std::string(s.message()).c_str());
  return 1;
}

int Run() {
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  const int P = absl::GetFlag(FLAGS_prompt_tokens), D = absl::GetFlag(FLAGS_decode_steps);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  if (P < 1 || D < 1) return Fail(absl::InvalidArgumentError("--prompt_tokens and --decode_steps must be >= 1"));
  std::vector<int> batches;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
    batches.push_back(std::stoi(std::string(b)));
    if (batches.back() < 1) return Fail(absl::InvalidArgumentError("--batches: each batch size must be >= 1"));
  }
  if (const std::string kv = absl::GetFlag(FLAGS_kv_cache_dtype); !ParseKvCacheDtype(kv).has_value()) {
    return Fail(absl::InvalidArgumentError("--kv_cache_dtype: \"" + kv + "\" is not fp32 or fp16"));
  }
  const std::vector<std::string> precisions = absl::StrSplit(absl::GetFlag(FLAGS_precisions), ',');
  for (const std::string& p : precisions) {
    if (absl::StatusOr<ModelLoadOptions> o = OptionsFor(p, nullptr); !o.ok()) return Fail(o.status());
  }

  // The probes first, on an otherwise idle process.
  const int64_t rounds = absl::GetFlag(FLAGS_fma_rounds);
  const FmaRate fma1 = FmaPeak(1, rounds, repeats), fmaN = FmaPeak(threads, rounds, repeats);
  const double peak1 = fma1.wall_gflops, peakN = fmaN.wall_gflops;
  ThreadPool pool(threads);
  const double bw = MeasureReadBandwidth(&pool, absl::GetFlag(FLAGS_bandwidth_mib) << 20, std::max(repeats, 5));
  // Step i (0-based) attends P + i + 1 positions; the mean over the timed steps.
  const double ctx = P + (D + 1) / 2.0;

  std::printf("model            %s\n", absl::GetFlag(FLAGS_model).c_str());
  std::printf("threads          %d; prompt %d tokens per sequence (untimed), %d decode steps, best of %d; "
              "KV cache %s\n", threads, P, D, repeats, absl::GetFlag(FLAGS_kv_cache_dtype).c_str());
  std::printf("fp32 FMA peak    %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d (%d chains x %d lanes; \"of peak\" "
              "below is against the latter)\n", peak1, peakN, threads, kFmaChains, UseAvx512() ? 16 : 8);
  if (const double likwid = LikwidPeakGflops(threads); likwid > 0) {
    std::printf("likwid-bench     %.1f GFLOP/s on %d (peakflops, same width; probe / likwid %.3f)\n", likwid, threads,
                peakN / likwid);
  }
  std::printf("  per CPU-second %.1f on 1, %.1f on %d: the threads had %.0f%% / %.0f%% of the wall time\n",
              fma1.cpu_gflops, fmaN.cpu_gflops, threads, 100 * peak1 / fma1.cpu_gflops,
              100 * peakN / fmaN.cpu_gflops);
  PrintBandwidth(bw, threads);
  for (const std::string& p : precisions) {
    absl::StatusOr<ModelLoadOptions> options = OptionsFor(p, &pool);
    if (!options.ok()) return Fail(options.status());
    absl::StatusOr<LoadedModel> m = LoadModel(absl::GetFlag(FLAGS_model), *options);
    if (!m.ok()) return Fail(m.status());
    CausalLM& model = *m->model;
    const double bytes = static_cast<double>(model.WeightBytes());
    const double flops = FlopsPerToken(model.config(), ctx);
    std::printf("\n-- %s: weights %.1f MB/step, batch-1 roofline %.1f tokens/s, %.1f MFLOP/token "
                "(matmul + attention at mean context %.1f)\n",
                p.c_str(), bytes / 1e6, bw / bytes, flops / 1e6, ctx);
    std::printf("%-7s %5s %9s %11s %8s %9s %9s %9s\n", "prec", "batch", "ms/step", "tokens/s", "vs b=1",
                "GFLOP/s", "of peak", "roofline");
    double base_tps = 0;
    for (int batch : batches) {
      absl::StatusOr<double> s = DecodeSeconds(model, batch, P, D, repeats);
      if (!s.ok()) return Fail(s.status());
      const double tps = static_cast<double>(batch) * D / *s;
      if (base_tps == 0) base_tps = tps;
      const double gflops = tps * flops / 1e9;
      const double roofline = tps / (batch * bw / bytes);
      std::printf("%-7s %5d %9.2f %11.1f %7.2fx %9.2f %8.1f%% %9.3f\n", p.c_str(), batch, *s / D * 1e3, tps,
                  tps / base_tps, gflops, 100 * gflops / peakN, roofline);
      std::printf("RESULT precision=%s batch=%d threads=%d decode_tps=%.3f vs_batch1=%.4f flops_per_token=%.0f "
                  "context=%.1f gflops=%.3f fma_peak_gflops=%.3f fma_peak_gflops_1t=%.3f fma_peak_cpu_gflops=%.3f "
                  "peak_fraction=%.4f "
                  "bytes_per_step=%.0f bandwidth_gbs=%.3f roofline_fraction=%.4f\n",
                  p.c_str(), batch, threads, tps, tps / base_tps, flops, ctx, gflops, peakN, peak1,
                  fmaN.cpu_gflops, gflops / peakN, bytes, bw / 1e9, roofline);
      if (absl::GetFlag(FLAGS_op_times)) {
        OpTimer timer;
        absl::StatusOr<double> t = DecodeSeconds(model, batch, P, D, 1, &timer);
        if (absl::IsUnimplemented(t.status())) {
          std::printf("  (--op_times: %s)\n", std::string(t.status().message()).c_str());
        } else if (!t.ok()) {
          return Fail(t.status());
        } else {
          PrintOpTimes(p, batch, D, timer, *t, MatmulFlopsPerToken(model.config()), flops, peakN,
                       /*fp32_products=*/options->activations != ActivationPrecision::kInt8 &&
                           !options->quantization.load_in_8bit);
        }
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
