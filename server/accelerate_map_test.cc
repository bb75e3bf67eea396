// accelerate's documented GPT-2 device map, verbatim, served on a machine
// without a GPU: accelerator: sim sends its GPU placements to sim:0, the
// decoder layers rest in host memory and cross the simulated link, ln_f and
// the tied lm_head are named on disk, and the tokens are those of the
// all-resident run.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"
#include "server/config.h"

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

}  // namespace
}  // namespace tierserve
