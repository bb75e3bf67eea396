// Decode and prefill speed at batch 1 with 0%, 50% and 100% of the decoder
// layers on disk (execution on the cpu; the embedding, final norm and head
// stay on the cpu), each beside the two bounds measured in the same run:
//
//   compute-only   the all-resident (0%) configuration's step time;
//   transfer-only  the time to read that configuration's offloaded bytes of
//                  one step with no compute: pread of the same regions of the
//                  offload file the streamer wrote (one per layer group, in
//                  order) into page-aligned buffers, on this thread alone.
//
// overlap efficiency = step / max(compute-only, transfer-only): 1.0 is perfect
// overlap of the reads with the math. step / (compute-only + transfer-only)
// is the same step against the no-overlap bound (below 1.0: some overlap).
// Beside them, the streamer's own figures over the measured window (stats()
// differences): bytes read, stall seconds, prefetch hits / acquires, and the
// copy thread's read rate, and how many cores the process got (CPU seconds
// per wall second: the machine may be shared). The three configurations are
// loaded at once and measured in interleaved rounds, the median round of each
// reported. Prints figures and ratios; asserts nothing.
//
// The page cache: the offload file is written at load, just before the
// measurement, so its pages are normally still in RAM and a "disk" read is a
// pread out of the page cache (a memcpy through the kernel). The header says
// how much of the file the page cache held when measuring started (mincore).
// --drop_cache asks the kernel to drop the file's pages (fdatasync, then
// posix_fadvise(POSIX_FADV_DONTNEED)) before each measured step and each
// transfer-only pass, so the reads go to the device; the drop itself is not
// timed. Reads the streamer issued ahead before the drop (the next step's
// first layers, prefetched while the last step's logits were computed) may
// still have come from the cache.
//
// The sim rows (--sim, on by default; after the disk rows, in rounds of their
// own): the same model executed on the simulated accelerator sim:0, whose
// copies are paced on a copy thread (latency + bytes / bandwidth each):
//
//   sim:0 resident        {"": sim:0}: the compute-only reference on sim;
//   layers on cpu         {"": sim:0, "model.layers": cpu}: every decoder
//                         layer rests in host memory and crosses the link at
//                         each step (one copy per weight); also at depth 2;
//   half on cpu           {"": sim:0, "model.layers.0-14": cpu};
//   half on disk          {"": sim:0, "model.layers.0-14": disk}: pread into
//                         host staging, then one copy of the group.
//
// Compute-only is the resident row's step in the same rounds; transfer-only
// is given twice: the link's own cost as configured (the window's bytes
// copied per step / bandwidth + copies per step x latency) and measured (the
// same per-layer copies queued on a new CopyStream of sim:0 with no compute,
// Record, Wait). --sim_bandwidth_gbs 0 picks the link that moves the
// layers-on-cpu step's bytes in the resident step's time (a probe before the
// rounds). The sim rows run on --sim_threads compute threads, 1 by default:
// the copy engine's memcpy needs the other core of a 2-core machine.
//
//   bench_offload --model models/SmolLM2-135M-Instruct.Q4_1.gguf --quantization int8
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/read_bandwidth.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(std::string, quantization, "",
          "\"\" (as stored), int8 (LLM.int8) or nf4 (bitsandbytes 4-bit, double quant).");
ABSL_FLAG(int32_t, threads, 2, "Threads of the compute pool.");
ABSL_FLAG(std::string, offload_dir, "/tmp", "Folder of the offload files (one per configuration).");
ABSL_FLAG(int32_t, decode_tokens, 64, "Decode steps timed per run.");
ABSL_FLAG(int32_t, batch, 1,
          "Sequences decoded together (one forward per step for all): decode tokens/s are "
          "aggregate, and what a step streams serves every sequence.");
ABSL_FLAG(int32_t, prefill_tokens, 128, "Tokens of the timed prefill forward.");
ABSL_FLAG(int32_t, depth, 2, "Prefetch depth of the streamer.");
ABSL_FLAG(int32_t, runs, 3, "Runs per configuration; the median run is reported.");
ABSL_FLAG(bool, drop_cache, false,
          "Drop the offload file's pages from the page cache before each measured step "
          "(posix_fadvise DONTNEED), so reads go to the device.");
ABSL_FLAG(bool, sim, true,
          "Also measure configurations executed on the simulated accelerator sim:0 (the decoder "
          "layers resting on the host or on disk, crossing sim:0's paced link at each step).");
ABSL_FLAG(double, sim_bandwidth_gbs, 0,
          "sim:0's link in GB/s; 0: chosen so that a decode step's transfers with every decoder "
          "layer on the host (bytes / bandwidth + copies x latency) take as long as its compute.");
ABSL_FLAG(double, sim_latency_us, 10, "sim:0's latency per copy, microseconds.");
ABSL_FLAG(int32_t, sim_depth, 8,
          "Prefetch depth of the sim rows (the layers-on-cpu row is also printed at depth 2).");
ABSL_FLAG(int32_t, sim_threads, 1,
          "Compute threads of the sim rows (1: the simulated copy engine's memcpy needs the other core).");

namespace tierserve {
namespace {

// Prompt forwarded (untimed) before the decode steps.
constexpr int kDecodePrompt = 16;
// Layer groups start on page boundaries in the offload file (the streamer's
// kGroupAlignment).
constexpr int64_t kGroupAlignment = 4096;

// User + system CPU seconds of every thread of the process so far.
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "bench_offload: %s\n", std::string(s.message()).c_str());
  return 1;
}

StreamerStats Minus(const StreamerStats& a, const StreamerStats& b) {
  StreamerStats d;
  d.groups_read = a.groups_read - b.groups_read;
  d.bytes_read = a.bytes_read - b.bytes_read;
  d.read_seconds = a.read_seconds - b.read_seconds;
  d.stall_seconds = a.stall_seconds - b.stall_seconds;
  d.acquires = a.acquires - b.acquires;
  d.prefetch_hits = a.prefetch_hits - b.prefetch_hits;
  d.bytes_copied = a.bytes_copied - b.bytes_copied;
  return d;
}

// The offload file, opened a second time for the cache control and the
// transfer-only reads. Closed fd (-1) when the configuration offloads nothing.
class FileProbe {
 public:
  explicit FileProbe(const std::string& path) {
    if (!path.empty()) fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0) {
      struct stat st;
      if (fstat(fd_, &st) == 0) size_ = st.st_size;
    }
  }
  ~FileProbe() {
    if (fd_ >= 0) close(fd_);
  }
  FileProbe(const FileProbe&) = delete;
  FileProbe& operator=(const FileProbe&) = delete;

  bool open_ok() const { return fd_ >= 0; }
  int64_t size() const { return size_; }

  // Writes back dirty pages (DONTNEED drops clean pages only), then asks the
  // kernel to drop the file's pages.
  void Drop() const {
    if (fd_ < 0) return;
    fdatasync(fd_);
    posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  }

  // Fraction of the file's pages in the page cache (mincore of a mapping);
  // -1 when unknown.
  double CachedFraction() const {
    if (fd_ < 0 || size_ == 0) return -1;
    void* p = mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return -1;
    const int64_t page = sysconf(_SC_PAGESIZE);
    const int64_t pages = (size_ + page - 1) / page;
    std::vector<unsigned char> vec(static_cast<size_t>(pages));
    double f = -1;
    if (mincore(p, static_cast<size_t>(size_), vec.data()) == 0) {
      int64_t in = 0;
      for (unsigned char v : vec) in += v & 1;
      f = static_cast<double>(in) / static_cast<double>(pages);
    }
    munmap(p, static_cast<size_t>(size_));
    return f;
  }

  // pread of exactly [offset, offset + bytes), as OffloadFile::Read does.
  bool Read(int64_t offset, int64_t bytes, void* out) const {
    auto* p = static_cast<uint8_t*>(out);
    int64_t done = 0;
    while (done < bytes) {
      const ssize_t n = pread(fd_, p + done, static_cast<size_t>(bytes - done), offset + done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += n;
    }
    return true;
  }

 private:
  int fd_ = -1;
  int64_t size_ = 0;
};

// One measured window: a prefill forward, or the decode steps of one run.
struct Window {
  double seconds = 0;  // the Forward calls only
  double cpu_seconds = 0;  // CPU time of the whole process (every thread) in them
  int tokens = 0;
  int steps = 0;  // forwards
  StreamerStats stats;
};

// The median of `runs` windows by time.
Window Median(std::vector<Window> runs) {
  std::sort(runs.begin(), runs.end(), [](const Window& a, const Window& b) { return a.seconds < b.seconds; });
  return runs[runs.size() / 2];
}

std::vector<int32_t> Prompt(const ModelConfig& cfg, int n, int salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i)
    p[i] = static_cast<int32_t>((i * 7919 + 13 + 101 * salt) % std::min<int64_t>(cfg.vocab_size, 30000));
  return p;
}

absl::StatusOr<Window> Prefill(CausalLM& model, int P, const FileProbe& file, bool drop) {
  const std::vector<int32_t> prompt = Prompt(model.config(), P, 0);
  auto cache = model.NewCache(P);
  std::vector<float> logits;
  SequenceInput in{prompt, 0, cache.get()};
  if (drop) file.Drop();
  const StreamerStats s0 = model.streamer().stats();
  const double c0 = ProcessCpuSeconds();
  const auto t0 = BenchClock::now();
  if (absl::Status s = model.Forward({&in, 1}, &logits); !s.ok()) return s;
  Window w;
  w.seconds = Seconds(t0, BenchClock::now());
  w.cpu_seconds = ProcessCpuSeconds() - c0;
  w.stats = Minus(model.streamer().stats(), s0);
  w.tokens = P;
  w.steps = 1;
  return w;
}

// --batch sequences of kDecodePrompt tokens (different prompts) forwarded
// untimed, then D steps of one token per sequence in one forward each, each
// fed its own argmax of the step before; only the step forwards are timed.
// The window's tokens are D x batch.
absl::StatusOr<Window> Decode(CausalLM& model, int D, const FileProbe& file, bool drop) {
  const int64_t V = model.config().vocab_size;
  const int B = std::max(1, absl::GetFlag(FLAGS_batch));
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<SequenceInput> in;
  for (int b = 0; b < B; ++b) {
    prompts.push_back(Prompt(model.config(), kDecodePrompt, 1 + b));
    caches.push_back(model.NewCache(kDecodePrompt + D));
  }
  for (int b = 0; b < B; ++b) in.push_back(SequenceInput{prompts[b], 0, caches[b].get()});
  std::vector<float> logits;
  if (absl::Status s = model.Forward(in, &logits); !s.ok()) return s;
  // Forward's logits are one row per sequence (its last position).
  std::vector<int32_t> tok(B);
  auto argmaxes = [&] {
    for (int b = 0; b < B; ++b) {
      const float* row = logits.data() + b * V;
      tok[b] = static_cast<int32_t>(std::max_element(row, row + V) - row);
    }
  };
  argmaxes();
  Window w;
  const StreamerStats s0 = model.streamer().stats();
  for (int i = 0; i < D; ++i) {
    if (drop) file.Drop();
    for (int b = 0; b < B; ++b) in[b] = SequenceInput{{&tok[b], 1}, kDecodePrompt + i, caches[b].get()};
    const double c0 = ProcessCpuSeconds();
    const auto t0 = BenchClock::now();
    if (absl::Status s = model.Forward(in, &logits); !s.ok()) return s;
    w.seconds += Seconds(t0, BenchClock::now());
    w.cpu_seconds += ProcessCpuSeconds() - c0;
    argmaxes();
  }
  w.stats = Minus(model.streamer().stats(), s0);
  w.tokens = D * B;
  w.steps = D;
  return w;
}

// Seconds per step of reading one step's offloaded regions with no compute:
// `groups` regions of `group_bytes` at page-aligned offsets (as the streamer
// laid them out), each into the next of `slots` page-aligned buffers (as the
// streamer rotates its staging slots). The mean over `steps` passes.
double TransferSeconds(const FileProbe& file, int groups, int64_t group_bytes, int64_t stride, int slots,
                       int steps, bool drop) {
  std::vector<void*> buffers(slots);
  const size_t alloc = static_cast<size_t>((group_bytes + 4095) / 4096 * 4096);
  for (void*& b : buffers) {
    b = std::aligned_alloc(4096, alloc);
    std::memset(b, 0, alloc);  // faulted in, as the staging pool is
  }
  double total = 0;
  int next = 0;
  for (int s = 0; s < steps; ++s) {
    if (drop) file.Drop();
    const auto t0 = BenchClock::now();
    for (int g = 0; g < groups; ++g) {
      if (!file.Read(g * stride, group_bytes, buffers[next])) {
        std::fprintf(stderr, "bench_offload: transfer-only read of group %d failed\n", g);
      }
      next = (next + 1) % slots;
    }
    total += Seconds(t0, BenchClock::now());
  }
  for (void* b : buffers) std::free(b);
  return total / steps;
}

struct Config {
  int percent;
  int disk_layers;
};

// What one configuration measured (median runs).
struct Result {
  Config config;
  Window prefill, decode;
  double transfer_seconds = 0;  // per step (one forward's offloaded bytes)
  int64_t transfer_bytes = 0;   // per step
  double cached_before = -1;    // fraction of the offload file in the page cache
  int64_t file_bytes = 0;
  int64_t staging_bytes = 0;
};

void Quantize(const std::string& q, ModelLoadOptions* o) {
  if (q == "int8") {
    o->quantization.load_in_8bit = true;
  } else if (q == "nf4") {
    o->quantization.load_in_4bit = true;
    o->quantization.bnb_4bit_quant_type = QuantizationConfig::QuantType::kNf4;
    o->quantization.bnb_4bit_use_double_quant = true;
  }
}

Placement At(Location::Tier tier) { return Placement{Location{tier, 0}, std::nullopt}; }

// One configuration: its model, its offload file and what it measured.
struct Bench {
  Config config;
  std::string path;
  LoadedModel loaded;
  std::unique_ptr<FileProbe> file;
  std::vector<Window> prefills, decodes, transfers;
  int64_t group_bytes = 0, stride = 0;
  Result result;
};

absl::Status Load(Bench* b, ThreadPool* pool) {
  const Config& c = b->config;
  ModelLoadOptions o;
  o.pool = pool;
  Quantize(absl::GetFlag(FLAGS_quantization), &o);
  o.prefetch_depth = absl::GetFlag(FLAGS_depth);
  if (c.disk_layers > 0) {
    DeviceMap map("bench_offload", "device_map");
    if (absl::Status s = map.AddKey("", At(Location::Tier::kCpu)); !s.ok()) return s;
    if (absl::Status s = map.AddKey(absl::StrCat("model.layers.0-", c.disk_layers - 1), At(Location::Tier::kDisk));
        !s.ok()) {
      return s;
    }
    o.device_map = std::move(map);
    o.offload_path = b->path;
  }
  absl::StatusOr<LoadedModel> m = LoadModel(absl::GetFlag(FLAGS_model), o);
  if (!m.ok()) return m.status();
  b->loaded = std::move(*m);
  b->file = std::make_unique<FileProbe>(c.disk_layers > 0 ? b->path : "");
  if (c.disk_layers > 0 && !b->file->open_ok()) {
    return absl::NotFoundError(absl::StrCat("cannot open the offload file ", b->path));
  }
  b->result.config = c;
  b->result.file_bytes = b->file->size();
  b->result.staging_bytes = b->loaded.model->streamer().staging_bytes();
  // Warm-up: the first forward teaches the streamer the order of the groups.
  absl::StatusOr<Window> w = Decode(*b->loaded.model, 4, *b->file, false);
  if (!w.ok()) return w.status();
  if (c.disk_layers > 0) {
    // Every layer group is the same size; the streamer's totals give it.
    const StreamerStats all = b->loaded.model->streamer().stats();
    b->group_bytes = all.groups_read > 0 ? all.bytes_read / all.groups_read : 0;
    b->stride = (b->group_bytes + kGroupAlignment - 1) / kGroupAlignment * kGroupAlignment;
    if (b->group_bytes * all.groups_read != all.bytes_read ||
        (c.disk_layers - 1) * b->stride + b->group_bytes != b->file->size()) {
      std::printf("note: %d%% on disk: the offload file (%lld bytes) is not %d groups of %lld bytes at %lld-byte "
                  "strides; transfer-only reads that layout anyway\n",
                  c.percent, static_cast<long long>(b->file->size()), c.disk_layers,
                  static_cast<long long>(b->group_bytes), static_cast<long long>(b->stride));
    }
  }
  return absl::OkStatus();
}

// One run of one configuration: a prefill, the decode steps, and (with
// anything offloaded) a transfer-only pass.
absl::Status RunOnce(Bench* b) {
  const int P = absl::GetFlag(FLAGS_prefill_tokens), D = absl::GetFlag(FLAGS_decode_tokens);
  const bool drop = absl::GetFlag(FLAGS_drop_cache);
  CausalLM& model = *b->loaded.model;
  if (b->result.cached_before < 0) b->result.cached_before = b->file->CachedFraction();
  absl::StatusOr<Window> p = Prefill(model, P, *b->file, drop);
  if (!p.ok()) return p.status();
  b->prefills.push_back(*p);
  absl::StatusOr<Window> d = Decode(model, D, *b->file, drop);
  if (!d.ok()) return d.status();
  b->decodes.push_back(*d);
  if (b->config.disk_layers > 0) {
    const int slots = absl::GetFlag(FLAGS_depth) + Streamer::kMaxHeld;
    Window w;
    w.seconds = TransferSeconds(*b->file, b->config.disk_layers, b->group_bytes, b->stride, slots,
                                std::max(D / 4, 4), drop);
    b->transfers.push_back(w);
  }
  return absl::OkStatus();
}

void Summarize(Bench* b) {
  Result& r = b->result;
  r.prefill = Median(b->prefills);
  r.decode = Median(b->decodes);
  if (!b->transfers.empty()) {
    r.transfer_seconds = Median(b->transfers).seconds;
    r.transfer_bytes = b->group_bytes * b->config.disk_layers;
  }
}

void PrintRow(const char* phase, const Result& r, const Window& w, const Window& resident) {
  const double step = w.seconds / w.steps;
  const double compute = resident.seconds / resident.steps;
  const double tps = w.tokens / w.seconds;
  const double base_tps = resident.tokens / resident.seconds;
  const double transfer = r.transfer_seconds;
  const double stall = w.stats.stall_seconds / w.steps;
  const double mb = static_cast<double>(w.stats.bytes_read) / w.steps / 1e6;
  const double copy_gbs = w.stats.read_seconds > 0 ? static_cast<double>(w.stats.bytes_read) / w.stats.read_seconds / 1e9 : 0;
  const double cpu_share = w.cpu_seconds / w.seconds;  // cores this process used, on average
  const std::string label = absl::StrCat(r.config.percent, "% (", r.config.disk_layers, " layers)");
  if (r.config.disk_layers == 0) {
    std::printf("%-16s %-7s %9.1f %6.2fx %9.2f %9.2f %9s %7s %7s %8s %8s %8s %8s %11s %8.2f\n", label.c_str(), phase,
                tps, tps / base_tps, step * 1e3, compute * 1e3, "-", "-", "-", "-", "-", "-", "-", "-", cpu_share);
  } else {
    const double xfer_gbs = static_cast<double>(r.transfer_bytes) / transfer / 1e9;
    std::printf("%-16s %-7s %9.1f %6.2fx %9.2f %9.2f %9.2f %7.2f %7.3f %8.3f %8.2f %8.2f %8.2f %5lld/%-5lld %8.2f\n",
                label.c_str(), phase, tps, tps / base_tps, step * 1e3, compute * 1e3, transfer * 1e3, xfer_gbs,
                step / std::max(compute, transfer), step / (compute + transfer), stall * 1e3, mb, copy_gbs,
                static_cast<long long>(w.stats.prefetch_hits), static_cast<long long>(w.stats.acquires), cpu_share);
  }
  const double xfer_gbs = transfer > 0 ? static_cast<double>(r.transfer_bytes) / transfer / 1e9 : 0;
  std::printf("RESULT quantization=%s disk_percent=%d disk_layers=%d phase=%s drop_cache=%d tokens_per_s=%.3f "
              "vs_resident=%.4f step_ms=%.4f compute_only_ms=%.4f transfer_only_ms=%.4f transfer_only_gbs=%.3f "
              "overlap_efficiency=%.4f no_overlap_ratio=%.4f stall_ms_per_step=%.4f mb_read_per_step=%.3f "
              "copy_thread_gbs=%.3f prefetch_hits=%lld acquires=%lld page_cache_fraction=%.3f cpu_per_wall=%.3f\n",
              absl::GetFlag(FLAGS_quantization).empty() ? "stored" : absl::GetFlag(FLAGS_quantization).c_str(),
              r.config.percent, r.config.disk_layers, phase, absl::GetFlag(FLAGS_drop_cache) ? 1 : 0, tps,
              tps / base_tps, step * 1e3, compute * 1e3, transfer * 1e3, xfer_gbs,
              transfer > 0 ? step / std::max(compute, transfer) : step / compute,
              step / (compute + transfer), stall * 1e3, mb, copy_gbs,
              static_cast<long long>(w.stats.prefetch_hits), static_cast<long long>(w.stats.acquires),
              r.cached_before, cpu_share);
}

// ---------------------------------------------------------------------------
// The sim rows: execution on the simulated accelerator sim:0, whose copies
// are paced on a copy thread (latency + bytes / bandwidth per copy). The
// embedding, final norm and head rest on sim:0; the decoder layers rest on
// sim:0, in host memory (copied over the link at each use, one copy per
// weight), or on disk (a pread into host staging, then one copy of the group
// over the link).

enum class SimRest { kDevice, kHost, kDisk };

// The offload file of a configuration: `--offload_dir`/bench_offload_<pid>_<key>.offload.
std::string OffloadPath(const std::string& key) {
  return (std::filesystem::path(absl::GetFlag(FLAGS_offload_dir)) /
          absl::StrCat("bench_offload_", getpid(), "_", key, ".offload"))
      .string();
}

// Frees every configuration's model and removes its offload file.
template <typename B>
void Cleanup(std::vector<B>* benches) {
  for (B& b : *benches) {
    b.file.reset();
    b.loaded = LoadedModel();
    std::error_code ec;
    std::filesystem::remove(b.path, ec);
  }
}

// Loads every configuration (`load`), then measures them in --runs rounds
// (`run_once`), the order rotating each round, so load from other processes
// on the machine falls on all of them alike. On an error the models and
// files are cleaned up.
template <typename B, typename LoadFn, typename RunOnceFn>
absl::Status LoadAndMeasure(std::vector<B>* benches, LoadFn load, RunOnceFn run_once) {
  absl::Status status;
  for (B& b : *benches) {
    if (status.ok()) status = load(&b);
  }
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  for (int r = 0; r < runs && status.ok(); ++r) {
    for (size_t i = 0; i < benches->size() && status.ok(); ++i) {
      status = run_once(&(*benches)[(r + i) % benches->size()]);
    }
  }
  if (!status.ok()) Cleanup(benches);
  return status;
}

struct SimConfig {
  std::string label;
  std::string key;   // RESULT name
  SimRest rest = SimRest::kDevice;
  int layers = 0;    // decoder layers off the device: 0 .. layers-1
  bool all = false;  // the map names "model.layers" rather than a range
  int depth = 2;
};

struct SimBench {
  SimConfig config;
  std::string path;  // offload file (kDisk)
  LoadedModel loaded;
  std::unique_ptr<FileProbe> file;
  std::vector<Window> prefills, decodes, transfers;
  // One offloaded layer group: its size (the streamer's image, members
  // 64-byte aligned back to back) and, resting on the host, the bytes of its
  // copies in order. Every decoder layer has the same shapes.
  int64_t group_bytes = 0, stride = 0;
  std::vector<int64_t> member_bytes;
  double cached_before = -1;
  int64_t staging_bytes = 0;
  Window prefill, decode;
  double transfer_seconds = 0;  // measured, per step
};

constexpr int64_t kMemberAlignment = 64;  // the streamer's member alignment in a group image
int64_t AlignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// The bytes of each weight copy of decoder layer `layer` when it rests on the
// host: its Linear records ("cpu"; the norms are recorded as "cpu" as well but
// stay resident in host memory, so they are left out).
std::vector<int64_t> HostMembers(const LoadedModel& m, int layer) {
  const std::string prefix = absl::StrCat("model.layers.", layer, ".");
  std::vector<int64_t> out;
  for (const ModuleRecord& r : m.modules) {
    if (r.module.rfind(prefix, 0) != 0 || r.device != "cpu") continue;
    const std::string leaf = r.module.substr(r.module.rfind('.') + 1);
    if (leaf.find("norm") != std::string::npos || r.module.find(".bias") != std::string::npos) continue;
    out.push_back(r.bytes);
  }
  return out;
}

int64_t ImageBytes(const std::vector<int64_t>& members) {
  int64_t end = 0;
  for (size_t i = 0; i < members.size(); ++i) end = (i == 0 ? 0 : AlignUp(end, kMemberAlignment)) + members[i];
  return end;
}

absl::StatusOr<LoadedModel> LoadSim(const SimConfig& c, DeviceSet* devices, ThreadPool* pool,
                                    const std::string& offload_path) {
  ModelLoadOptions o;
  o.pool = pool;
  o.devices = devices;
  Quantize(absl::GetFlag(FLAGS_quantization), &o);
  o.prefetch_depth = c.depth;
  DeviceMap map("bench_offload", "device_map");
  if (absl::Status s = map.AddKey("", At(Location::Tier::kSim)); !s.ok()) return s;
  if (c.rest != SimRest::kDevice) {
    const std::string key = c.all ? "model.layers" : absl::StrCat("model.layers.0-", c.layers - 1);
    const Location::Tier tier = c.rest == SimRest::kHost ? Location::Tier::kCpu : Location::Tier::kDisk;
    if (absl::Status s = map.AddKey(key, At(tier)); !s.ok()) return s;
  }
  o.device_map = std::move(map);
  if (c.rest == SimRest::kDisk) o.offload_path = offload_path;
  absl::StatusOr<LoadedModel> m = LoadModel(absl::GetFlag(FLAGS_model), o);
  if (!m.ok()) return m.status();
  if (m->execution_device != "sim:0") {
    return absl::InternalError(absl::StrCat(c.label, ": executes on ", m->execution_device, ", not sim:0"));
  }
  return m;
}

absl::Status LoadSimBench(SimBench* b, DeviceSet* devices, ThreadPool* pool) {
  const SimConfig& c = b->config;
  absl::StatusOr<LoadedModel> m = LoadSim(c, devices, pool, b->path);
  if (!m.ok()) return m.status();
  b->loaded = std::move(*m);
  b->file = std::make_unique<FileProbe>(c.rest == SimRest::kDisk ? b->path : "");
  if (c.rest == SimRest::kDisk && !b->file->open_ok()) {
    return absl::NotFoundError(absl::StrCat("cannot open the offload file ", b->path));
  }
  b->staging_bytes = b->loaded.model->streamer().staging_bytes();
  absl::StatusOr<Window> w = Decode(*b->loaded.model, 4, *b->file, false);  // warm-up; learns the order
  if (!w.ok()) return w.status();
  if (c.rest == SimRest::kDevice) return absl::OkStatus();
  const StreamerStats all = b->loaded.model->streamer().stats();
  b->group_bytes = all.groups_read > 0 ? all.bytes_copied / all.groups_read : 0;
  if (b->group_bytes <= 0 || b->group_bytes * all.groups_read != all.bytes_copied) {
    return absl::InternalError(absl::StrCat(c.label, ": the streamer copied ", all.bytes_copied, " bytes in ",
                                            all.groups_read, " groups; expected equal groups"));
  }
  if (c.rest == SimRest::kHost) {
    b->member_bytes = HostMembers(b->loaded, 0);
    if (ImageBytes(b->member_bytes) != b->group_bytes) {
      std::printf("note: %s: the layer records (%zu weights, %lld bytes) do not make the streamer's %lld-byte "
                  "group; the measured transfer copies each group in one piece\n",
                  c.label.c_str(), b->member_bytes.size(), static_cast<long long>(ImageBytes(b->member_bytes)),
                  static_cast<long long>(b->group_bytes));
      b->member_bytes = {b->group_bytes};
    }
  } else {
    b->member_bytes = {b->group_bytes};  // the streamer copies a disk group in one piece
    b->stride = AlignUp(b->group_bytes, kGroupAlignment);
    if ((c.layers - 1) * b->stride + b->group_bytes != b->file->size()) {
      std::printf("note: %s: the offload file (%lld bytes) is not %d groups of %lld bytes at %lld-byte strides; "
                  "the measured transfer reads that layout anyway\n",
                  c.label.c_str(), static_cast<long long>(b->file->size()), c.layers,
                  static_cast<long long>(b->group_bytes), static_cast<long long>(b->stride));
    }
  }
  return absl::OkStatus();
}

// Seconds per step of moving one step's offloaded layers to `device` with no
// compute, through a new copy stream of it: per layer group, into the next of
// `slots` staging buffers on the device, the same copies the streamer makes
// (host rest: one Copy per weight from its own host buffer, 64-byte aligned in
// the slot; disk rest: an Enqueue'd pread of the group's region into a host
// staging buffer, then one Copy). All of a step's copies are queued, then one
// Record and Wait. The mean over `steps` passes after an untimed one.
absl::StatusOr<double> SimTransferSeconds(Device* device, const SimBench& b, int slots, int steps, bool drop) {
  const int groups = b.config.layers;
  std::vector<Buffer> dst;
  for (int i = 0; i < slots; ++i) {
    absl::StatusOr<Buffer> d = device->Allocate(b.group_bytes, MemoryKind::kScratch);
    if (!d.ok()) return d.status();
    std::memset(d->data(), 0, static_cast<size_t>(d->size()));
    dst.push_back(std::move(*d));
  }
  std::vector<int64_t> offsets;
  for (size_t i = 0; i < b.member_bytes.size(); ++i) {
    offsets.push_back(i == 0 ? 0 : AlignUp(offsets.back() + b.member_bytes[i - 1], kMemberAlignment));
  }
  // Host sources: each weight of each layer in a buffer of its own (host
  // rest), or the host staging slots the reads land in (disk rest).
  std::vector<void*> host;
  auto alloc = [&](int64_t bytes) {
    const size_t n = static_cast<size_t>(AlignUp(bytes, kGroupAlignment));
    void* p = std::aligned_alloc(kGroupAlignment, n);
    std::memset(p, 1, n);
    host.push_back(p);
    return p;
  };
  if (b.config.rest == SimRest::kHost) {
    for (int g = 0; g < groups; ++g)
      for (int64_t m : b.member_bytes) alloc(m);
  } else {
    for (int i = 0; i < slots; ++i) alloc(b.group_bytes);
  }
  absl::Status status;
  double total = 0;
  {
    std::unique_ptr<CopyStream> stream = device->NewCopyStream();
    int next = 0;
    for (int s = 0; s < steps + 1 && status.ok(); ++s) {
      if (drop) b.file->Drop();
      const auto t0 = BenchClock::now();
      for (int g = 0; g < groups; ++g) {
        uint8_t* slot = dst[next].data();
        if (b.config.rest == SimRest::kHost) {
          for (size_t m = 0; m < b.member_bytes.size(); ++m) {
            stream->Copy(host[g * b.member_bytes.size() + m], slot + offsets[m], b.member_bytes[m]);
          }
        } else {
          void* landing = host[next];
          const FileProbe* file = b.file.get();
          const int64_t offset = g * b.stride, bytes = b.group_bytes;
          stream->Enqueue([file, offset, bytes, landing] {
            return file->Read(offset, bytes, landing) ? absl::OkStatus()
                                                      : absl::DataLossError("transfer-only pread failed");
          });
          stream->Copy(landing, slot, b.group_bytes);
        }
        next = (next + 1) % slots;
      }
      status = stream->Record()->Wait();
      if (s > 0) total += Seconds(t0, BenchClock::now());
    }
  }  // the stream drains before the buffers go
  for (void* p : host) std::free(p);
  if (!status.ok()) return status;
  return total / steps;
}

absl::Status SimRunOnce(SimBench* b, DeviceSet* devices) {
  const int P = absl::GetFlag(FLAGS_prefill_tokens), D = absl::GetFlag(FLAGS_decode_tokens);
  const bool drop = absl::GetFlag(FLAGS_drop_cache);
  CausalLM& model = *b->loaded.model;
  if (b->cached_before < 0) b->cached_before = b->file->CachedFraction();
  absl::StatusOr<Window> p = Prefill(model, P, *b->file, drop);
  if (!p.ok()) return p.status();
  b->prefills.push_back(*p);
  absl::StatusOr<Window> d = Decode(model, D, *b->file, drop);
  if (!d.ok()) return d.status();
  b->decodes.push_back(*d);
  if (b->config.rest != SimRest::kDevice) {
    absl::StatusOr<double> t = SimTransferSeconds(devices->Sim(0), *b, b->config.depth + Streamer::kMaxHeld,
                                                  std::max(D / 4, 4), drop);
    if (!t.ok()) return t.status();
    Window w;
    w.seconds = *t;
    b->transfers.push_back(w);
  }
  return absl::OkStatus();
}

// The simulated link's own cost of a window's copies, per forward:
// bytes_copied / bandwidth + copies x latency.
double LinkSeconds(const SimBench& b, const Window& w, const SimDeviceOptions& link) {
  const double copies = static_cast<double>(w.stats.groups_read) * static_cast<double>(b.member_bytes.size());
  const double bytes = static_cast<double>(w.stats.bytes_copied);
  const double t = (link.bandwidth_bytes_per_second > 0 ? bytes / link.bandwidth_bytes_per_second : 0) +
                   copies * link.latency_seconds;
  return t / w.steps;
}

void PrintSimRow(const char* phase, const SimBench& b, const Window& w, const Window& resident,
                 const SimDeviceOptions& link) {
  const double step = w.seconds / w.steps;
  const double compute = resident.seconds / resident.steps;
  const double tps = w.tokens / w.seconds;
  const double base_tps = resident.tokens / resident.seconds;
  const double cpu_share = w.cpu_seconds / w.seconds;
  const double stall = w.stats.stall_seconds / w.steps;
  const double mb = static_cast<double>(w.stats.bytes_copied) / w.steps / 1e6;
  const double disk_gbs =
      w.stats.read_seconds > 0 ? static_cast<double>(w.stats.bytes_read) / w.stats.read_seconds / 1e9 : 0;
  const std::string label =
      b.config.rest == SimRest::kDevice ? b.config.label : absl::StrCat(b.config.label, " d", b.config.depth);
  double link_s = 0, meas = 0;
  if (b.config.rest == SimRest::kDevice) {
    std::printf("%-30s %-7s %9.1f %6.2fx %9.2f %9.2f %8s %8s %7s %7s %7s %7s %7s %8s %8s %8s %11s %8.2f\n",
                label.c_str(), phase, tps, tps / base_tps, step * 1e3, compute * 1e3, "-", "-", "-", "-", "-", "-",
                "-", "-", "-", "-", "-", cpu_share);
  } else {
    link_s = LinkSeconds(b, w, link);
    meas = b.transfer_seconds;
    const double meas_gbs = meas > 0 ? static_cast<double>(b.group_bytes) * b.config.layers / meas / 1e9 : 0;
    char disk[16] = "-";
    if (b.config.rest == SimRest::kDisk) std::snprintf(disk, sizeof(disk), "%.2f", disk_gbs);
    std::printf("%-30s %-7s %9.1f %6.2fx %9.2f %9.2f %8.2f %8.2f %7.2f %7.3f %7.3f %7.3f %7.3f %8.2f %8.2f %8s "
                "%5lld/%-5lld %8.2f\n",
                label.c_str(), phase, tps, tps / base_tps, step * 1e3, compute * 1e3, link_s * 1e3, meas * 1e3,
                meas_gbs, step / std::max(compute, link_s), step / (compute + link_s), step / std::max(compute, meas),
                step / (compute + meas), stall * 1e3, mb, disk, static_cast<long long>(w.stats.prefetch_hits),
                static_cast<long long>(w.stats.acquires), cpu_share);
  }
  std::printf("RESULT_SIM quantization=%s config=%s rest=%s offloaded_layers=%d depth=%d phase=%s drop_cache=%d "
              "link_gbs=%.4f latency_us=%.2f sim_threads=%d tokens_per_s=%.3f vs_resident=%.4f step_ms=%.4f "
              "compute_only_ms=%.4f transfer_link_ms=%.4f transfer_measured_ms=%.4f "
              "overlap_efficiency_link=%.4f no_overlap_ratio_link=%.4f overlap_efficiency_measured=%.4f "
              "no_overlap_ratio_measured=%.4f stall_ms_per_step=%.4f mb_copied_per_step=%.3f "
              "mb_read_per_step=%.3f prefetch_hits=%lld acquires=%lld page_cache_fraction=%.3f cpu_per_wall=%.3f\n",
              absl::GetFlag(FLAGS_quantization).empty() ? "stored" : absl::GetFlag(FLAGS_quantization).c_str(),
              b.config.key.c_str(),
              b.config.rest == SimRest::kDevice ? "sim" : (b.config.rest == SimRest::kHost ? "cpu" : "disk"),
              b.config.layers, b.config.depth, phase, absl::GetFlag(FLAGS_drop_cache) ? 1 : 0,
              link.bandwidth_bytes_per_second / 1e9, link.latency_seconds * 1e6, absl::GetFlag(FLAGS_sim_threads),
              tps, tps / base_tps, step * 1e3, compute * 1e3, link_s * 1e3, meas * 1e3,
              step / std::max(compute, link_s), step / (compute + link_s),
              meas > 0 ? step / std::max(compute, meas) : step / compute, step / (compute + meas), stall * 1e3, mb,
              static_cast<double>(w.stats.bytes_read) / w.steps / 1e6, static_cast<long long>(w.stats.prefetch_hits),
              static_cast<long long>(w.stats.acquires), b.cached_before, cpu_share);
}

// The median decode step of `model` over `windows` windows of `steps` steps.
absl::StatusOr<double> ProbeStepSeconds(CausalLM& model, int steps, int windows) {
  FileProbe none("");
  std::vector<Window> ws;
  for (int i = 0; i < windows; ++i) {
    absl::StatusOr<Window> w = Decode(model, steps, none, false);
    if (!w.ok()) return w.status();
    ws.push_back(*w);
  }
  const Window m = Median(ws);
  return m.seconds / m.steps;
}

int RunSim(int num_layers) {
  const int sim_threads = std::max(1, absl::GetFlag(FLAGS_sim_threads));
  const int depth = absl::GetFlag(FLAGS_sim_depth);
  if (depth < 1) return Fail(absl::InvalidArgumentError("--sim_depth must be >= 1"));
  const double latency = std::max(0.0, absl::GetFlag(FLAGS_sim_latency_us)) * 1e-6;
  // sim:0's memory is host memory; its capacity only bounds the accounting,
  // here set far above what the rows load (they are all loaded at once).
  const int64_t capacity = int64_t{1} << 36;
  ThreadPool pool(sim_threads);
  const int half = num_layers / 2;

  // The link. Auto: a probe pair on an unpaced sim:0 gives the resident
  // decode step and the bytes and copies of a step with every layer on the
  // host; the link then moves those in that step's time.
  double bandwidth = absl::GetFlag(FLAGS_sim_bandwidth_gbs) * 1e9;
  std::string link_note = "fixed by --sim_bandwidth_gbs";
  if (bandwidth <= 0) {
    DeviceSet fast(SimDeviceOptions{capacity, 0, 0});
    const SimConfig resident{"probe resident", "probe", SimRest::kDevice, 0, false, depth};
    const SimConfig host{"probe layers on cpu", "probe", SimRest::kHost, num_layers, true, depth};
    absl::StatusOr<LoadedModel> r = LoadSim(resident, &fast, &pool, "");
    if (!r.ok()) return Fail(r.status());
    FileProbe none("");
    if (absl::StatusOr<Window> w = Decode(*r->model, 4, none, false); !w.ok()) return Fail(w.status());
    absl::StatusOr<double> compute = ProbeStepSeconds(*r->model, 16, 3);
    if (!compute.ok()) return Fail(compute.status());
    SimBench probe;
    probe.config = host;
    absl::Status s = LoadSimBench(&probe, &fast, &pool);
    if (!s.ok()) return Fail(s);
    const int64_t bytes = probe.group_bytes * num_layers;
    const int64_t copies = static_cast<int64_t>(probe.member_bytes.size()) * num_layers;
    const double avail = *compute - static_cast<double>(copies) * latency;
    if (avail > 0) {
      bandwidth = static_cast<double>(bytes) / avail;
      link_note = absl::StrFormat(
          "auto: the resident decode step took %.2f ms (probe on an unpaced sim:0, %d thread%s, before the rounds); "
          "a step with every layer on the host copies %.2f MB in %lld copies, so bandwidth = %.2f MB / "
          "(%.2f ms - %lld x %.0f us)",
          *compute * 1e3, sim_threads, sim_threads == 1 ? "" : "s", static_cast<double>(bytes) / 1e6,
          static_cast<long long>(copies), static_cast<double>(bytes) / 1e6, *compute * 1e3,
          static_cast<long long>(copies), latency * 1e6);
    } else {
      bandwidth = 0;
      link_note = absl::StrFormat(
          "auto: the latency alone (%lld copies x %.0f us) exceeds the resident step (%.2f ms): bandwidth unlimited",
          static_cast<long long>(copies), latency * 1e6, *compute * 1e3);
    }
  }
  const SimDeviceOptions link{capacity, bandwidth, latency};
  DeviceSet devices(link);

  std::vector<SimConfig> configs = {
      {"sim:0 resident", "resident", SimRest::kDevice, 0, false, depth},
      {"sim:0, layers on cpu", "layers_on_cpu", SimRest::kHost, num_layers, true, depth},
      {"sim:0, half on cpu", "half_on_cpu", SimRest::kHost, half, false, depth},
      {"sim:0, half on disk", "half_on_disk", SimRest::kDisk, half, false, depth},
  };
  if (depth != 2) configs.push_back({"sim:0, layers on cpu", "layers_on_cpu", SimRest::kHost, num_layers, true, 2});
  std::vector<SimBench> benches(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    benches[i].config = configs[i];
    benches[i].path = OffloadPath(absl::StrCat("sim_", configs[i].key));
  }
  if (absl::Status status = LoadAndMeasure(
          &benches, [&](SimBench* b) { return LoadSimBench(b, &devices, &pool); },
          [&](SimBench* b) { return SimRunOnce(b, &devices); });
      !status.ok()) {
    return Fail(status);
  }
  for (SimBench& b : benches) {
    b.prefill = Median(b.prefills);
    b.decode = Median(b.decodes);
    if (!b.transfers.empty()) b.transfer_seconds = Median(b.transfers).seconds;
  }
  const SimBench& host_all = benches[1];
  std::printf("\n\nsim          the same model executed on the simulated accelerator sim:0 (embedding, final norm and "
              "head resting on it), the decoder layers resting on sim:0, in host memory or on disk\n");
  std::printf("sim link     %.3f GB/s, %.0f us per copy; %s\n", bandwidth / 1e9, latency * 1e6, link_note.c_str());
  std::printf("sim threads  %d compute thread%s (--sim_threads): sim:0's copy engine does each copy's memcpy on a "
              "thread of its own, then sleeps until the paced finish, so it needs a core beside the math; on a "
              "%ld-core machine a second compute thread would take that core and the copies would wait for the math "
              "(a GPU's copy engine works beside its SMs)\n",
              sim_threads, sim_threads == 1 ? "" : "s", sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("sim rows     prefetch depth %d (the layers-on-cpu row also at depth 2: the dN suffix); layers on cpu: "
              "all %d layers, %zu copies of %.2f MB per layer; half: layers 0-%d; half on disk: offload file in %s, "
              "page cache held %.0f%% of it before the first measured run; staging pools %.1f / %.1f / %.1f MB\n",
              depth, num_layers, host_all.member_bytes.size(), static_cast<double>(host_all.group_bytes) / 1e6,
              half - 1, absl::GetFlag(FLAGS_offload_dir).c_str(), 100 * benches[3].cached_before,
              static_cast<double>(benches[1].staging_bytes) / 1e6, static_cast<double>(benches[2].staging_bytes) / 1e6,
              static_cast<double>(benches[3].staging_bytes) / 1e6);
  std::printf("sim columns  compute = \"sim:0 resident\"'s step in the same interleaved rounds; link = the window's "
              "bytes copied to sim:0 per step / bandwidth + copies per step x latency: the simulated link's own cost "
              "as configured, not a measurement; meas = the same per-layer copies (disk row: each layer's pread into "
              "host staging Enqueue'd before its copy, as the streamer does) queued on a new CopyStream of sim:0 with "
              "no compute, Record, Wait, per step; GB/s = a step's bytes / meas; overlap = step / max(compute, "
              "transfer), 1.0 perfect; no-ovlp = step / (compute + transfer), 0.5 perfect when they are equal; MB = "
              "bytes copied to sim:0 per step; disk GB/s = bytes read / copy-thread read time\n\n");
  std::printf("%-30s %-7s %9s %7s %9s %9s %8s %8s %7s %7s %7s %7s %7s %8s %8s %8s %11s %8s\n", "sim config", "phase",
              "tok/s", "vs res", "step ms", "compute", "link", "meas", "meas", "overlap", "no-ovlp", "overlap",
              "no-ovlp", "stall ms", "MB", "disk", "hits/", "cpu/");
  std::printf("%-30s %-7s %9s %7s %9s %9s %8s %8s %7s %7s %7s %7s %7s %8s %8s %8s %11s %8s\n", "", "", "", "", "",
              "ms", "ms", "ms", "GB/s", "link", "link", "meas", "meas", "/step", "/step", "GB/s", "acquires",
              "wall");
  const SimBench& resident = benches[0];
  for (const SimBench& b : benches) PrintSimRow("decode", b, b.decode, resident.decode, link);
  for (const SimBench& b : benches) PrintSimRow("prefill", b, b.prefill, resident.prefill, link);
  Cleanup(&benches);
  return 0;
}

int Run() {
  const std::string q = absl::GetFlag(FLAGS_quantization);
  if (!q.empty() && q != "int8" && q != "nf4") {
    return Fail(absl::InvalidArgumentError("--quantization: \"\", int8 or nf4"));
  }
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  const int P = absl::GetFlag(FLAGS_prefill_tokens), D = absl::GetFlag(FLAGS_decode_tokens);
  if (P < 1 || D < 1) return Fail(absl::InvalidArgumentError("--prefill_tokens and --decode_tokens must be >= 1"));
  if (absl::GetFlag(FLAGS_depth) < 1) return Fail(absl::InvalidArgumentError("--depth must be >= 1"));
  ThreadPool pool(threads);

  // The layer count, from an all-resident load (the 0% configuration loads
  // again below: each configuration gets a fresh model).
  int num_layers = 0;
  {
    ModelLoadOptions o;
    o.pool = &pool;
    Quantize(q, &o);
    absl::StatusOr<LoadedModel> m = LoadModel(absl::GetFlag(FLAGS_model), o);
    if (!m.ok()) return Fail(m.status());
    num_layers = static_cast<int>(m->model->config().num_layers);
  }
  const std::vector<Config> configs = {{0, 0}, {50, num_layers / 2}, {100, num_layers}};

  // Every configuration loaded at once and measured in rotating rounds.
  std::vector<Bench> benches(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    benches[i].config = configs[i];
    benches[i].path = OffloadPath(absl::StrCat(configs[i].percent));
  }
  if (absl::Status status = LoadAndMeasure(
          &benches, [&](Bench* b) { return Load(b, &pool); }, [](Bench* b) { return RunOnce(b); });
      !status.ok()) {
    return Fail(status);
  }
  std::vector<Result> results;
  for (Bench& b : benches) {
    Summarize(&b);
    results.push_back(b.result);
  }
  Cleanup(&benches);

  const bool drop = absl::GetFlag(FLAGS_drop_cache);
  std::printf("model        %s, quantization %s, %d decoder layers\n", absl::GetFlag(FLAGS_model).c_str(),
              q.empty() ? "none (as stored)" : q.c_str(), num_layers);
  std::printf("run          %d threads, prefetch depth %d, decode %d steps after a %d-token prompt, prefill %d "
              "tokens; median of %d runs, the configurations interleaved\n",
              threads, absl::GetFlag(FLAGS_depth), D, kDecodePrompt, P, std::max(1, absl::GetFlag(FLAGS_runs)));
  for (const Result& r : results) {
    if (r.config.disk_layers == 0) continue;
    std::printf("offload      %d%%: layers 0-%d on disk, file %.1f MB in %s, staging pool %.1f MB; page cache held "
                "%.0f%% of the file before the first measured run\n",
                r.config.percent, r.config.disk_layers - 1, static_cast<double>(r.file_bytes) / 1e6,
                absl::GetFlag(FLAGS_offload_dir).c_str(), static_cast<double>(r.staging_bytes) / 1e6,
                100 * r.cached_before);
  }
  if (drop) {
    std::printf("page cache   --drop_cache: the offload file's pages are dropped (fdatasync + posix_fadvise "
                "DONTNEED) before every measured step and transfer-only pass, so reads should go to the device; "
                "groups the streamer prefetched before the drop may still have come from RAM\n");
  } else {
    std::printf("page cache   WARM: the offload file was just written, so \"disk\" reads are preads served from "
                "RAM (the page cache) unless the kernel evicted them; these figures are a memory-copy link, not a "
                "device. --drop_cache makes reads go to the device\n");
  }
  std::printf("columns      compute = the 0%% configuration's step; transfer = one step's offloaded regions read with "
              "no compute (pread, one thread); overlap = step / max(compute, transfer), 1.0 perfect; no-overlap = "
              "step / (compute + transfer); stall, MB read, copy GB/s (bytes / copy-thread read time) and "
              "prefetch hits / acquires from the streamer over the window; cpu/wall = CPU seconds of the whole process "
              "(every thread) per wall second in the timed forwards: well below the thread count means other "
              "processes took the cores\n\n");
  std::printf("%-16s %-7s %9s %7s %9s %9s %9s %7s %7s %8s %8s %8s %8s %11s %8s\n", "on disk", "phase", "tok/s",
              "vs res", "step ms", "compute", "transfer", "xfer", "overlap", "no-ovlp", "stall ms", "MB read",
              "copy", "hits/", "cpu/");
  std::printf("%-16s %-7s %9s %7s %9s %9s %9s %7s %7s %8s %8s %8s %8s %11s %8s\n", "", "", "", "", "", "ms", "ms",
              "GB/s", "eff", "ratio", "/step", "/step", "GB/s", "acquires", "wall");
  const Result& resident = results[0];
  for (const Result& r : results) PrintRow("decode", r, r.decode, resident.decode);
  for (const Result& r : results) PrintRow("prefill", r, r.prefill, resident.prefill);
  std::fflush(stdout);
  if (absl::GetFlag(FLAGS_sim)) return RunSim(num_layers);
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
