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
#include "bench/read_bandwidth.h"
#include "runtime/model/model_loader.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf", "Model path.");
ABSL_FLAG(std::string, quantization, "",
          "\"\" (as stored), int8 (LLM.int8) or nf4 (bitsandbytes 4-bit, double quant).");
ABSL_FLAG(int32_t, threads, 2, "Threads of the compute pool.");
ABSL_FLAG(std::string, offload_dir, "/tmp", "Folder of the offload files (one per configuration).");
ABSL_FLAG(int32_t, decode_tokens, 64, "Decode steps timed per run.");
ABSL_FLAG(int32_t, prefill_tokens, 128, "Tokens of the timed prefill forward.");
ABSL_FLAG(int32_t, depth, 2, "Prefetch depth of the streamer.");
ABSL_FLAG(int32_t, runs, 3, "Runs per configuration; the median run is reported.");
ABSL_FLAG(bool, drop_cache, false,
          "Drop the offload file's pages from the page cache before each measured step "
          "(posix_fadvise DONTNEED), so reads go to the device.");

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

int32_t Argmax(const std::vector<float>& logits, int64_t V) {
  const float* last = logits.data() + logits.size() - V;
  return static_cast<int32_t>(std::max_element(last, last + V) - last);
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

// kDecodePrompt tokens forwarded untimed, then D steps of one token each, fed
// the argmax of the step before; only the step forwards are timed.
absl::StatusOr<Window> Decode(CausalLM& model, int D, const FileProbe& file, bool drop) {
  const int64_t V = model.config().vocab_size;
  const std::vector<int32_t> prompt = Prompt(model.config(), kDecodePrompt, 1);
  auto cache = model.NewCache(kDecodePrompt + D);
  std::vector<float> logits;
  SequenceInput in{prompt, 0, cache.get()};
  if (absl::Status s = model.Forward({&in, 1}, &logits); !s.ok()) return s;
  int32_t tok = Argmax(logits, V);
  Window w;
  const StreamerStats s0 = model.streamer().stats();
  for (int i = 0; i < D; ++i) {
    if (drop) file.Drop();
    SequenceInput step{{&tok, 1}, kDecodePrompt + i, cache.get()};
    const double c0 = ProcessCpuSeconds();
    const auto t0 = BenchClock::now();
    if (absl::Status s = model.Forward({&step, 1}, &logits); !s.ok()) return s;
    w.seconds += Seconds(t0, BenchClock::now());
    w.cpu_seconds += ProcessCpuSeconds() - c0;
    tok = Argmax(logits, V);
  }
  w.stats = Minus(model.streamer().stats(), s0);
  w.tokens = D;
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

  // Every configuration loaded at once and measured in rounds, the order
  // rotating each round, so load from other processes on the machine falls on
  // all of them alike.
  std::vector<Bench> benches(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    benches[i].config = configs[i];
    benches[i].path = (std::filesystem::path(absl::GetFlag(FLAGS_offload_dir)) /
                       absl::StrCat("bench_offload_", getpid(), "_", configs[i].percent, ".offload"))
                          .string();
  }
  auto cleanup = [&] {
    for (Bench& b : benches) {
      b.file.reset();
      b.loaded = LoadedModel();
      std::error_code ec;
      std::filesystem::remove(b.path, ec);
    }
  };
  absl::Status status;
  for (Bench& b : benches) {
    if (status.ok()) status = Load(&b, &pool);
  }
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  for (int r = 0; r < runs && status.ok(); ++r) {
    for (size_t i = 0; i < benches.size() && status.ok(); ++i) {
      status = RunOnce(&benches[(r + i) % benches.size()]);
    }
  }
  if (!status.ok()) {
    cleanup();
    return Fail(status);
  }
  std::vector<Result> results;
  for (Bench& b : benches) {
    Summarize(&b);
    results.push_back(b.result);
  }
  cleanup();

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
  return 0;
}

}  // namespace
}  // namespace tierserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tierserve::Run();
}
