// Timing: the streamer overlaps a simulated link with compute. Run on its
// own (ctest RUN_SERIAL): the simulated copy engine's memcpy needs the core
// the compute thread does not use, which a parallel test would take.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {
namespace {

constexpr char kSmolLM2[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

Placement At(Location::Tier tier) { return Placement{Location{tier, 0}, std::nullopt}; }

// Median decode step times of the models of `models`, over `steps` steps
// each after 2 warm-ups, the models taking turns step by step so a change
// of load on the machine hits them alike.
std::vector<double> MedianStepSeconds(const std::vector<CausalLM*>& models, int steps) {
  struct Run {
    std::unique_ptr<KvCache> cache;
    std::vector<double> times;
  };
  std::vector<Run> runs(models.size());
  for (size_t i = 0; i < models.size(); ++i) runs[i].cache = models[i]->NewCache(64);
  std::vector<float> logits;
  for (int s = 0; s < steps + 2; ++s) {
    const int32_t tokens[] = {static_cast<int32_t>((s * 7919 + 13) % models[0]->config().vocab_size)};
    for (size_t i = 0; i < models.size(); ++i) {
      SequenceInput in{tokens, s, runs[i].cache.get()};
      const auto t0 = std::chrono::steady_clock::now();
      EXPECT_TRUE(models[i]->Forward({&in, 1}, &logits).ok());
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s >= 2) runs[i].times.push_back(t);
    }
  }
  std::vector<double> medians;
  for (Run& r : runs) {
    std::sort(r.times.begin(), r.times.end());
    medians.push_back(r.times[r.times.size() / 2]);
  }
  return medians;
}

// Every decoder layer of SmolLM2 rests in host memory and crosses a
// simulated link to sim:0 at each step, the link slowed until a step's
// transfers take as long as its compute. With the next layers on their way
// while one computes, a step takes about max(compute, transfer), not their
// sum (2x). The bound here is generous (the benchmark prints the exact
// figures); it fails when the copies do not overlap the math. One compute
// thread: the simulated copy engine's memcpy takes the machine's other core,
// as a GPU's copy engine works beside its SMs.
TEST(SimOverlapTest, AStreamedStepTakesAboutTheLongerOfComputeAndTransfer) {
  if (!std::filesystem::exists(kSmolLM2)) GTEST_FAIL() << kSmolLM2 << " is missing";
  ThreadPool pool(1);
  auto load = [&](DeviceSet* devices, bool layers_on_host) {
    DeviceMap map("test", "device_map");
    EXPECT_TRUE(map.AddKey("", Placement{Location{Location::Tier::kSim, 0}, std::nullopt}).ok());
    if (layers_on_host) {
      EXPECT_TRUE(map.AddKey("model.layers", At(Location::Tier::kCpu)).ok());
    }
    ModelLoadOptions o;
    o.pool = &pool;
    o.devices = devices;
    o.device_map = std::move(map);
    // Deep enough that the link keeps working while the resident head
    // computes (a third of the step): 8 layers of 2.2 MB ahead.
    o.prefetch_depth = 8;
    absl::StatusOr<LoadedModel> m = LoadModel(kSmolLM2, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return std::move(*m);
  };
  DeviceSet fast(SimDeviceOptions{int64_t{1} << 30, 1e12, 0});
  LoadedModel resident = load(&fast, false);
  const double compute_alone = MedianStepSeconds({resident.model.get()}, 8)[0];

  // The link that moves a step's layer bytes in that time.
  int64_t layer_bytes = 0;
  {
    LoadedModel probe = load(&fast, true);
    for (const ModuleRecord& r : probe.modules) {
      if (r.module.rfind("model.layers.", 0) == 0 && r.device == "cpu") layer_bytes += r.bytes;
    }
  }
  ASSERT_GT(layer_bytes, 0);
  DeviceSet slow(SimDeviceOptions{int64_t{1} << 30, layer_bytes / compute_alone, 0});
  LoadedModel streamed = load(&slow, true);
  // Up to three rounds, the best one counts: a busy machine can spoil a
  // round, but no round overlaps when the copies wait for the math.
  double best = 1e9;
  for (int round = 0; round < 3 && best > 1.25; ++round) {
    const StreamerStats before = streamed.model->streamer().stats();
    constexpr int kSteps = 12;
    const std::vector<double> t =
        MedianStepSeconds({resident.model.get(), streamed.model.get()}, kSteps);
    const double compute = t[0], step = t[1];
    const StreamerStats after = streamed.model->streamer().stats();
    const double per_step_bytes =
        static_cast<double>(after.bytes_copied - before.bytes_copied) / (kSteps + 2);
    const double transfer = per_step_bytes / slow.sim_options().bandwidth_bytes_per_second;
    const double ratio = step / std::max(compute, transfer);
    std::printf("compute %.2f ms, transfer %.2f ms (%.1f MB/step at %.2f GB/s), streamed step "
                "%.2f ms = %.2fx max, %.2fx sum\n",
                compute * 1e3, transfer * 1e3, per_step_bytes / 1e6,
                slow.sim_options().bandwidth_bytes_per_second / 1e9, step * 1e3, ratio,
                step / (compute + transfer));
    best = std::min(best, ratio);
  }
  EXPECT_LE(best, 1.25);
}

}  // namespace
}  // namespace tierserve
