// Speed of one model in each precision the loader can give its linear
// layers — as stored (GGUF blocks), fp32, int8 (LLM.int8), nf4 with double
// quant, fp4 — at batch 1 and batch 8, on 1 and 2 threads: prefill and
// decode tokens/s, weight bytes read per step, and the decode fraction of the
// memory-bandwidth roofline measured in the same run (a step reads every
// weight once whatever the batch, so the roofline in tokens/s is
// batch x bandwidth / bytes). Ratios against fp32 and against batch 1 are
// printed beside. Asserts nothing.
//
//   bench_quantized --model models/SmolLM2-135M-Instruct.Q4_1.gguf
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "bench/read_bandwidth.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(std::string, threads, "1,2", "Thread counts, comma-separated.");
ABSL_FLAG(std::string, batches, "1,8", "Batch sizes, comma-separated.");
ABSL_FLAG(std::string, precisions, "fp32,stored,int8,nf4,fp4",
          "Precisions, comma-separated (fp32 first gives the vs-fp32 ratios). nf4 is "
          "double-quantized, fp4 is not; a suffix -bf16 or -fp16 (nf4-bf16) sets "
          "bnb_4bit_compute_dtype, fp32 otherwise.");
ABSL_FLAG(int32_t, prompt_tokens, 256, "Prompt length of each sequence.");
ABSL_FLAG(int32_t, decode_tokens, 32, "Decode steps measured.");
ABSL_FLAG(int32_t, repeats, 2, "Repeats; the best is reported.");
ABSL_FLAG(int64_t, bandwidth_mib, 1024, "Buffer size of the bandwidth probe, MiB.");

namespace tierserve {
namespace {

struct Speed {
  double prefill_tps = 0;  // prompt tokens of all sequences / second
  double decode_tps = 0;   // generated tokens of all sequences / second
};

absl::StatusOr<Speed> Measure(CausalLM& model, int batch, int P, int D, int repeats) {
  const ModelConfig& cfg = model.config();
  std::vector<std::vector<int32_t>> prompts(batch, std::vector<int32_t>(P));
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < P; ++i)
      prompts[b][i] = static_cast<int32_t>((i * 7919 + 13 + 101 * b) % std::min<int64_t>(cfg.vocab_size, 30000));
  double best_prefill = 1e30, best_decode = 1e30;
  std::vector<float> logits;
  for (int r = 0; r < repeats; ++r) {
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<SequenceInput> in(batch);
    for (int b = 0; b < batch; ++b) {
      caches.push_back(model.NewCache(P + D + 1));
      in[b] = SequenceInput{prompts[b], 0, caches.back().get(), false};
    }
    auto t0 = BenchClock::now();
    if (absl::Status s = model.Forward(in, &logits); !s.ok()) return s;
    best_prefill = std::min(best_prefill, Seconds(t0, BenchClock::now()));
    std::vector<int32_t> tok(batch);
    const int64_t V = cfg.vocab_size;
    auto pick = [&] {
      for (int b = 0; b < batch; ++b)
        tok[b] = static_cast<int32_t>(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) -
                                      (logits.begin() + b * V));
    };
    pick();
    t0 = BenchClock::now();
    for (int i = 0; i < D; ++i) {
      for (int b = 0; b < batch; ++b) in[b] = SequenceInput{{&tok[b], 1}, P + i, caches[b].get(), false};
      if (absl::Status s = model.Forward(in, &logits); !s.ok()) return s;
      pick();
    }
    best_decode = std::min(best_decode, Seconds(t0, BenchClock::now()));
  }
  return Speed{static_cast<double>(batch) * P / best_prefill, static_cast<double>(batch) * D / best_decode};
}

QuantizationConfig ConfigFor(const std::string& precision) {
  QuantizationConfig q;
  if (precision == "int8") q.load_in_8bit = true;
  const std::string p = precision.substr(0, 3);
  if (p == "nf4" || p == "fp4") {
    q.load_in_4bit = true;
    q.bnb_4bit_quant_type = p == "nf4" ? QuantizationConfig::QuantType::kNf4 : QuantizationConfig::QuantType::kFp4;
    q.bnb_4bit_use_double_quant = p == "nf4";
    if (absl::EndsWith(precision, "-bf16")) q.bnb_4bit_compute_dtype = ComputeDType::kBf16;
    if (absl::EndsWith(precision, "-fp16")) q.bnb_4bit_compute_dtype = ComputeDType::kFp16;
  }
  return q;
}

int Run() {
  const int P = absl::GetFlag(FLAGS_prompt_tokens), D = absl::GetFlag(FLAGS_decode_tokens);
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  std::vector<int> threads, batches;
  for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_threads), ',')) threads.push_back(std::stoi(std::string(t)));
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) batches.push_back(std::stoi(std::string(b)));
  const std::vector<std::string> precisions = absl::StrSplit(absl::GetFlag(FLAGS_precisions), ',');

  std::printf("model %s, prompt %d tokens per sequence, %d decode steps\n",
              absl::GetFlag(FLAGS_model).c_str(), P, D);
  std::printf("%-9s %3s %5s %12s %12s %12s %9s %9s %9s\n", "prec", "thr", "batch", "MB/step",
              "prefill t/s", "decode t/s", "roofline", "vs fp32", "vs b=1");
  for (int th : threads) {
    ThreadPool pool(th);
    const double bw = MeasureReadBandwidth(&pool, absl::GetFlag(FLAGS_bandwidth_mib) << 20, 5);
    std::printf("-- %d thread(s)\n", th);
    PrintBandwidth(bw, th);
    std::vector<std::vector<double>> decode(precisions.size());
    for (size_t pi = 0; pi < precisions.size(); ++pi) {
      const std::string& p = precisions[pi];
      ModelLoadOptions options;
      options.pool = &pool;
      if (p == "fp32") {
        options.device_map = DeviceMap::Everything(Placement{Location{}, Precision::kFp32}, "bench", "precision");
      } else {
        options.quantization = ConfigFor(p);
      }
      absl::StatusOr<LoadedModel> m = LoadModel(absl::GetFlag(FLAGS_model), options);
      if (!m.ok()) {
        std::fprintf(stderr, "bench_quantized: %s\n", std::string(m.status().message()).c_str());
        return 1;
      }
      const double bytes = static_cast<double>(m->model->WeightBytes());
      for (int batch : batches) {
        absl::StatusOr<Speed> s = Measure(*m->model, batch, P, D, repeats);
        if (!s.ok()) {
          std::fprintf(stderr, "bench_quantized: %s\n", std::string(s.status().message()).c_str());
          return 1;
        }
        decode[pi].push_back(s->decode_tps);
        const double roofline = batch * bw / bytes;
        const double fp32 = pi > 0 && precisions[0] == "fp32" ? decode[0][decode[pi].size() - 1] : 0;
        std::printf("%-9s %3d %5d %12.1f %12.1f %12.1f %9.3f", p.c_str(), th, batch, bytes / 1e6,
                    s->prefill_tps, s->decode_tps, s->decode_tps / roofline);
        if (fp32 > 0) std::printf(" %8.2fx", s->decode_tps / fp32); else std::printf(" %9s", "-");
        std::printf(" %8.2fx\n", s->decode_tps / decode[pi][0]);
        std::printf("RESULT precision=%s threads=%d batch=%d prefill_tps=%.3f decode_tps=%.3f "
                    "bytes_per_step=%.0f bandwidth_gbs=%.3f roofline_fraction=%.4f\n",
                    p.c_str(), th, batch, s->prefill_tps, s->decode_tps, bytes, bw / 1e9,
                    s->decode_tps / roofline);
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
