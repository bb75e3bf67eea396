// Device maps served on simulated accelerators, config to tokens:
// accelerate's documented GPT-2 device map, verbatim, on a machine without a
// GPU (accelerator: sim sends its GPU placements to sim:0, the decoder layers
// rest in host memory and cross the simulated link, ln_f and the tied
// lm_head are named on disk); and `device_map: auto` on a sim smaller than
// the model. The tokens are those of the all-resident run.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/base/byte_size.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"
#include "server/config.h"
#include "server/model_plan.h"

namespace tierserve {
namespace {

// `n` greedy tokens after `prompt`.
std::vector<int32_t> Greedy(CausalLM& model, std::vector<int32_t> prompt, int n) {
  const int64_t V = model.config().vocab_size;
  auto cache = model.NewCache(static_cast<int64_t>(prompt.size()) + n);
  std::vector<float> logits;
  std::vector<int32_t> out;
  int64_t pos = 0;
  std::vector<int32_t> feed = std::move(prompt);
  for (int i = 0; i < n; ++i) {
    SequenceInput in{feed, pos, cache.get()};
    const absl::Status st = model.Forward({&in, 1}, &logits);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return out;
    pos += static_cast<int64_t>(feed.size());
    const int32_t next = static_cast<int32_t>(
        std::max_element(logits.end() - V, logits.end()) - (logits.end() - V));
    out.push_back(next);
    feed = {next};
  }
  return out;
}

TEST(AccelerateMapTest, TheDocumentedGpt2MapRunsOnSimAndMatchesAllResident) {
  std::ifstream file("tests/data/configs/accelerate_gpt2.yaml");
  ASSERT_TRUE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("tierserve_accelerate_" + std::to_string(getpid()));
  absl::StatusOr<ServerConfig> config = ParseServerConfig(
      absl::StrCat(text.str(), "    offload_folder: ", folder.string(), "\n"), "accelerate_gpt2.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(ApplyFlagOverrides(&*config, FlagOverrides{}).ok());
  const ModelServingConfig& m = config->models[0];
  ASSERT_TRUE(CheckServable(m, config->source).ok()) << CheckServable(m, config->source);
  const absl::Status covers = CheckDeviceMapCoversModel(m, config->source);
  ASSERT_TRUE(covers.ok()) << covers;

  ThreadPool pool(2);
  DeviceSet devices;
  ModelLoadOptions o;
  o.pool = &pool;
  o.devices = &devices;
  o.device_map = m.device_map;
  o.offload_path = OffloadPath(m);
  absl::StatusOr<LoadedModel> mapped = LoadModel(m.path, o);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(mapped->execution_device, "sim:0");
  std::map<std::string, std::string> where;
  for (const ModuleRecord& r : mapped->modules) where[r.module] = r.device;
  EXPECT_EQ(where["transformer.wte"], "sim:0");
  EXPECT_EQ(where["transformer.h.0.attn.c_attn"], "cpu");
  EXPECT_GT(devices.Sim(0)->usage().bytes[static_cast<int>(MemoryKind::kWeights)], 0);

  absl::StatusOr<LoadedModel> resident = LoadModel(m.path, &pool);
  ASSERT_TRUE(resident.ok()) << resident.status();
  const std::vector<int32_t> prompt = {46, 329, 31, 257};
  const std::vector<int32_t> want = Greedy(*resident->model, prompt, 16);
  EXPECT_EQ(Greedy(*mapped->model, prompt, 16), want);
  // The layers crossed the link at every step.
  EXPECT_GT(mapped->model->streamer().stats().bytes_copied, 0);
  std::filesystem::remove_all(folder);
}

// A config for tiny_llama on sim devices of `sim_memory` bytes.
std::string SimConfig(int64_t sim_memory, const std::string& model) {
  return absl::StrCat("server:\n  sim_device: {memory: ", sim_memory,
                      "}\nmodels:\n  - name: tiny\n    path: tests/data/tiny_llama\n"
                      "    accelerator: sim\n    max_batch_size: 1\n    max_sequence_length: 32\n",
                      model);
}

class SimPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The model's bytes resident on an accelerator, as the planner sizes them.
    absl::StatusOr<std::unique_ptr<WeightSource>> src = WeightSource::Open("tests/data/tiny_llama");
    ASSERT_TRUE(src.ok()) << src.status();
    absl::StatusOr<std::vector<ModuleSize>> sizes =
        SizeModel(**src, QuantizationConfig(), DeviceMap::Auto("", ""), Location{Location::Tier::kSim, 0});
    ASSERT_TRUE(sizes.ok()) << sizes.status();
    for (const GroupSize& g : GroupSizes(*sizes)) model_bytes_ += g.resident_bytes;
  }

  absl::StatusOr<ModelPlan> Plan(const std::string& yaml, ServerConfig* config) {
    absl::StatusOr<ServerConfig> c = ParseServerConfig(yaml, "sim.yaml");
    if (!c.ok()) return c.status();
    *config = *std::move(c);
    TS_RETURN_IF_ERROR(ApplyFlagOverrides(config, FlagOverrides{}));
    TS_RETURN_IF_ERROR(CheckServable(config->models[0], config->source));
    return PlanModel(config->models[0], *config);
  }

  int64_t model_bytes_ = 0;
};

TEST_F(SimPlanTest, AutoFitsASimSmallerThanTheModelAndServesTheResidentTokens) {
  // Without read-ahead the staging is one group: on a model this small, two
  // more slots would take the room of the groups themselves.
  const int64_t capacity = model_bytes_ * 9 / 10;
  ServerConfig config;
  absl::StatusOr<ModelPlan> plan =
      Plan(SimConfig(capacity, "    device_map: auto\n    prefetch_depth: 0\n"), &config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const DeviceUsage* sim = plan->report.Find(Location{Location::Tier::kSim, 0});
  ASSERT_NE(sim, nullptr);
  EXPECT_GT(sim->groups, 0);
  EXPECT_LE(sim->total(), capacity);
  EXPECT_GT(plan->report.Find(Location{Location::Tier::kCpu, 0})->groups, 0);
  const std::string text = FormatPlan(config.models[0], *plan);
  EXPECT_NE(text.find("\"model.embed_tokens\": sim:0"), std::string::npos) << text;

  ThreadPool pool(2);
  DeviceSet devices(SimDeviceOptions{config.sim_memory_bytes, 32e9, 1e-6});
  ModelLoadOptions o;
  o.pool = &pool;
  o.devices = &devices;
  o.device_map = plan->map;
  o.prefetch_depth = 0;
  absl::StatusOr<LoadedModel> planned = LoadModel(config.models[0].path, o);
  ASSERT_TRUE(planned.ok()) << planned.status();
  EXPECT_EQ(planned->execution_device, "sim:0");
  EXPECT_EQ(devices.Sim(0)->usage().bytes[static_cast<int>(MemoryKind::kWeights)], sim->weights);
  EXPECT_EQ(devices.Sim(0)->usage().bytes[static_cast<int>(MemoryKind::kStaging)], sim->staging);
  absl::StatusOr<LoadedModel> resident = LoadModel(config.models[0].path, &pool);
  ASSERT_TRUE(resident.ok()) << resident.status();
  const std::vector<int32_t> prompt = {5, 17, 42, 9};
  EXPECT_EQ(Greedy(*planned->model, prompt, 12), Greedy(*resident->model, prompt, 12));
}

TEST_F(SimPlanTest, AnExplicitMapOverTheSimFailsBeforeLoadingWithTheFigures) {
  const int64_t capacity = model_bytes_ * 6 / 10;
  ServerConfig config;
  absl::StatusOr<ModelPlan> plan = Plan(SimConfig(capacity, "    device_map: {\"\": 0}\n"), &config);
  ASSERT_FALSE(plan.ok());
  const std::string error(plan.status().message());
  EXPECT_EQ(error.rfind("sim.yaml: models[0].device_map: the device map does not fit: sim:0 needs ", 0), 0u)
      << error;
  EXPECT_NE(error.find(absl::StrCat("but its budget is ", FormatBytes(capacity))), std::string::npos)
      << error;
  // And a budget below the capacity is the one checked.
  plan = Plan(SimConfig(model_bytes_ * 4, "    device_map: {\"\": 0}\n    max_memory: {0: 1KiB}\n"),
              &config);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(std::string(plan.status().message())
                .rfind("sim.yaml: models[0].max_memory: the device map does not fit: sim:0 needs ", 0),
            0u)
      << plan.status();
}

TEST_F(SimPlanTest, AutoWithoutRoomForTheFirstGroupSaysWhatDidNotFit) {
  ServerConfig config;
  absl::StatusOr<ModelPlan> plan =
      Plan(SimConfig(model_bytes_ * 4, "    device_map: auto\n    max_memory: {sim:0: 1KiB}\n"), &config);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(std::string(plan.status().message())
                .rfind("sim.yaml: models[0].device_map: auto cannot place the model: nothing fits on sim:0", 0),
            0u)
      << plan.status();
}

}  // namespace
}  // namespace tierserve
