// Disk offload: modules placed on `disk` are written to the offload file in
// their final precision, freed, and staged back by the streamer when their
// layer runs. The logits are the bits of the all-resident model, in every
// precision, for prefill and decode steps; and the failures are clear.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {
namespace {

constexpr char kSmolLM2[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Case {
  std::string name;
  std::string path;
  std::string quantization;  // "" (as stored), "int8", "nf4", "fp4", "fp32" (by the map)
  std::string layers;        // the layer prefix: model.layers or transformer.h
  int num_layers;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

void Quantize(const std::string& q, ModelLoadOptions* o) {
  if (q == "int8") {
    o->quantization.load_in_8bit = true;
  } else if (q == "nf4" || q == "fp4") {
    o->quantization.load_in_4bit = true;
    o->quantization.bnb_4bit_quant_type =
        q == "nf4" ? QuantizationConfig::QuantType::kNf4 : QuantizationConfig::QuantType::kFp4;
    o->quantization.bnb_4bit_use_double_quant = true;
  }
}

Placement At(Location::Tier tier) { return Placement{Location{tier, 0}, std::nullopt}; }

// `map` with every linear module in fp32 (GGUF blocks dequantized at load);
// an empty map places everything on the cpu.
DeviceMap InFp32(const DeviceMap& map) {
  if (map.entries().empty()) {
    return DeviceMap::Everything(Placement{Location{}, Precision::kFp32}, "test", "device_map");
  }
  DeviceMap out("test", "device_map");
  const std::string* previous = nullptr;
  for (const DeviceMap::Entry& e : map.entries()) {
    if (previous != nullptr && *previous == e.key) continue;  // a range, expanded
    previous = &e.key;
    EXPECT_TRUE(out.AddKey(e.key, Placement{e.placement.device, Precision::kFp32}).ok());
  }
  return out;
}

// A fresh offload folder per test.
class OffloadFolder {
 public:
  OffloadFolder() {
    path_ = std::filesystem::temp_directory_path() /
            ("tierserve_offload_test_" + std::to_string(getpid()) + "_" + std::to_string(++count_));
    std::filesystem::create_directories(path_);
  }
  ~OffloadFolder() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int count_ = 0;
  std::filesystem::path path_;
};

// The prompt's logits (every position) and those of `decode` more steps,
// each fed the argmax of the step before.
std::vector<float> Generate(CausalLM& model, int decode) {
  const int64_t V = model.config().vocab_size;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 12; ++i) prompt.push_back(static_cast<int32_t>((7919 * i + 5) % V));
  auto cache = model.NewCache(static_cast<int64_t>(prompt.size()) + decode);
  std::vector<float> all, logits;
  SequenceInput in{prompt, 0, cache.get(), /*all_logits=*/true};
  EXPECT_TRUE(model.Forward({&in, 1}, &logits).ok());
  all = logits;
  int64_t pos = static_cast<int64_t>(prompt.size());
  for (int s = 0; s < decode; ++s) {
    const float* last = logits.data() + logits.size() - V;
    const int32_t next = static_cast<int32_t>(std::max_element(last, last + V) - last);
    const int32_t token[] = {next};
    SequenceInput step{token, pos++, cache.get()};
    const absl::Status st = model.Forward({&step, 1}, &logits);
    EXPECT_TRUE(st.ok()) << st;
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

class OffloadTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(GetParam().path)) {
      GTEST_FAIL() << GetParam().path << " is missing: run scripts/fetch_model.sh";
    }
    pool_ = std::make_unique<ThreadPool>(2);
  }

  LoadedModel Load(DeviceMap map, const std::string& offload) {
    ModelLoadOptions o;
    o.pool = pool_.get();
    o.devices = &devices_;
    Quantize(GetParam().quantization, &o);
    o.device_map = GetParam().quantization == "fp32" ? InFp32(map) : std::move(map);
    o.offload_path = offload;
    absl::StatusOr<LoadedModel> m = LoadModel(GetParam().path, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : LoadedModel();
  }

  std::unique_ptr<ThreadPool> pool_;
  DeviceSet devices_{SimDeviceOptions{int64_t{2} << 30, 32e9, 1e-6}};
};

TEST_P(OffloadTest, HalfAndAllOnDiskGiveTheBitsOfAllResident) {
  const Case& c = GetParam();
  const std::vector<float> resident = Generate(*Load(DeviceMap(), "").model, 4);

  OffloadFolder folder;
  DeviceMap half("test", "device_map");
  ASSERT_TRUE(half.AddKey("", At(Location::Tier::kCpu)).ok());
  const std::string first_half = c.layers + ".0-" + std::to_string(c.num_layers / 2 - 1);
  ASSERT_TRUE(half.AddKey(first_half, At(Location::Tier::kDisk)).ok());
  DeviceMap all("test", "device_map");
  ASSERT_TRUE(all.AddKey("", At(Location::Tier::kDisk)).ok());

  for (const DeviceMap* map : {&half, &all}) {
    SCOPED_TRACE(map == &half ? "half on disk" : "all on disk");
    LoadedModel m = Load(*map, folder.File(c.name + ".offload"));
    ASSERT_NE(m.model, nullptr);
    const std::vector<float> got = Generate(*m.model, 4);
    ASSERT_EQ(got.size(), resident.size());
    EXPECT_EQ(std::memcmp(got.data(), resident.data(), got.size() * sizeof(float)), 0);
    // The weights really came from disk: every step read the offloaded layers.
    const StreamerStats stats = m.model->streamer().stats();
    EXPECT_GT(stats.bytes_read, 0);
    // From the second forward on, reads run ahead along the learned order.
    if (c.num_layers > 4) {
      EXPECT_GT(stats.prefetch_hits, 0);
    }
    EXPECT_GT(m.model->streamer().staging_bytes(), 0);
    int disk_modules = 0;
    for (const ModuleRecord& r : m.modules) disk_modules += r.device == "disk";
    EXPECT_GT(disk_modules, 0);
  }
}

Placement AtSim(int index) { return Placement{Location{Location::Tier::kSim, index}, std::nullopt}; }

TEST_P(OffloadTest, SimulatedAcceleratorsGiveTheBitsOfAllResident) {
  const Case& c = GetParam();
  const std::vector<float> resident = Generate(*Load(DeviceMap(), "").model, 3);
  const std::string first_half = c.layers + ".0-" + std::to_string(c.num_layers / 2 - 1);
  OffloadFolder folder;
  struct Map {
    std::string name;
    DeviceMap map;
  };
  std::vector<Map> maps;
  {  // Everything resident on sim:0.
    DeviceMap m("test", "device_map");
    ASSERT_TRUE(m.AddKey("", AtSim(0)).ok());
    maps.push_back({"all on sim:0", std::move(m)});
  }
  {  // sim:0 computes; half the layers rest in host memory and cross the link.
    DeviceMap m("test", "device_map");
    ASSERT_TRUE(m.AddKey("", AtSim(0)).ok());
    ASSERT_TRUE(m.AddKey(first_half, At(Location::Tier::kCpu)).ok());
    maps.push_back({"sim:0 with cpu offload", std::move(m)});
  }
  {  // sim:0 computes; half the layers come from disk through host staging.
    DeviceMap m("test", "device_map");
    ASSERT_TRUE(m.AddKey("", AtSim(0)).ok());
    ASSERT_TRUE(m.AddKey(first_half, At(Location::Tier::kDisk)).ok());
    maps.push_back({"sim:0 with disk offload", std::move(m)});
  }
  {  // Two simulated devices.
    DeviceMap m("test", "device_map");
    ASSERT_TRUE(m.AddKey("", AtSim(0)).ok());
    ASSERT_TRUE(m.AddKey(first_half, AtSim(1)).ok());
    maps.push_back({"sim:0 + sim:1", std::move(m)});
  }
  auto sim0_weights = [&] {
    return devices_.Sim(0)->usage().bytes[static_cast<int>(MemoryKind::kWeights)];
  };
  const int64_t before = sim0_weights();
  for (const Map& m : maps) {
    SCOPED_TRACE(m.name);
    LoadedModel loaded = Load(m.map, folder.File(c.name + ".offload"));
    ASSERT_NE(loaded.model, nullptr);
    const std::vector<float> got = Generate(*loaded.model, 3);
    ASSERT_EQ(got.size(), resident.size());
    EXPECT_EQ(std::memcmp(got.data(), resident.data(), got.size() * sizeof(float)), 0);
    const StreamerStats stats = loaded.model->streamer().stats();
    if (m.name == "sim:0 with cpu offload" || m.name == "sim:0 with disk offload") {
      EXPECT_GT(stats.bytes_copied, 0);
    }
    // A pipeline carries the hidden state across at each boundary: to sim:1
    // for the first half of the layers and back for the rest, every forward
    // (the 12-token prompt, then one row per step); one device, never.
    const int64_t row_bytes = loaded.model->config().hidden_size * static_cast<int64_t>(sizeof(float));
    const bool pipeline = m.name == "sim:0 + sim:1";
    EXPECT_EQ(stats.activation_moves, pipeline ? 2 * (1 + 3) : 0);
    EXPECT_EQ(stats.activation_bytes, pipeline ? 2 * (12 + 3) * row_bytes : 0);
    // What the load report puts on sim:0 is what sim:0 counts as its weights.
    int64_t on_sim0 = 0;
    for (const ModuleRecord& r : loaded.modules) on_sim0 += r.device == "sim:0" ? r.bytes : 0;
    EXPECT_GT(on_sim0, 0);
    EXPECT_EQ(sim0_weights() - before, on_sim0);
    loaded = LoadedModel();
    EXPECT_EQ(sim0_weights(), before);
  }
}

// The planner's figures are what the load allocates: plan within budgets
// that leave half the groups on sim:0, some in host memory and (SmolLM2)
// some on disk; load the planned map on a sim:0 whose
// capacity is its budget; sim:0's weights and staging, and the host's
// weights and staging, are the plan's to the byte; and the logits are the
// bits of the all-resident model.
TEST_P(OffloadTest, APlannedMapLoadsAsMeasuredAndGivesTheBitsOfAllResident) {
  const Case& c = GetParam();

  const std::vector<float> resident = Generate(*Load(DeviceMap(), "").model, 2);
  ModelLoadOptions o;
  Quantize(c.quantization, &o);
  const Location sim0{Location::Tier::kSim, 0};
  absl::StatusOr<std::unique_ptr<WeightSource>> src = WeightSource::Open(c.path);
  ASSERT_TRUE(src.ok()) << src.status();
  absl::StatusOr<std::vector<ModuleSize>> sizes =
      SizeModel(**src, o.quantization,
                c.quantization == "fp32" ? InFp32(DeviceMap()) : DeviceMap::Auto("test", "device_map"),
                sim0);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  const std::vector<GroupSize> groups = GroupSizes(*sizes);
  ASSERT_GE(groups.size(), 3u);
  // The first half of the groups on sim:0 beside the staging of the second
  // half; the cpu room for one group of the second half beside the disk
  // staging; the rest (SmolLM2) on disk.
  const size_t half = groups.size() / 2;
  int64_t first_half = 0, largest_staged = 0, largest_offloaded = 0, host_only = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (i < half) {
      first_half += groups[i].resident_bytes;
    } else {
      largest_staged = std::max(largest_staged, groups[i].staged_bytes);
      largest_offloaded = std::max(largest_offloaded, groups[i].offloaded_bytes);
    }
  }
  for (const ModuleSize& m : *sizes) host_only += m.host_only ? m.resident_bytes : 0;
  Budgets b;
  b.staging_slots = 1;  // prefetch depth 0: the group in use
  b.headroom = 0;
  b.disk = true;
  b.accelerators = {{sim0, first_half + largest_staged}};
  b.cpu = host_only + largest_staged + largest_offloaded;
  absl::StatusOr<PlacementReport> plan = PlanPlacement(*sizes, PlanStrategy::kSequential, b);
  ASSERT_TRUE(plan.ok()) << plan.status();
  int on[4] = {0, 0, 0, 0};  // by tier
  for (const auto& [group, where] : plan->groups) ++on[static_cast<int>(where.tier)];
  EXPECT_GT(on[static_cast<int>(Location::Tier::kSim)], 0);
  EXPECT_GT(on[static_cast<int>(Location::Tier::kCpu)], 0);
  if (c.num_layers > 4) {
    EXPECT_GT(on[static_cast<int>(Location::Tier::kDisk)], 0);
  }

  OffloadFolder folder;
  DeviceSet devices(SimDeviceOptions{b.accelerators[0].second, 32e9, 1e-6});
  auto used = [](Device* d, MemoryKind k) { return d->usage().bytes[static_cast<int>(k)]; };
  const int64_t host_weights = used(devices.host(), MemoryKind::kWeights);
  const int64_t host_staging = used(devices.host(), MemoryKind::kStaging);
  o.pool = pool_.get();
  o.devices = &devices;
  o.device_map = plan->ToDeviceMap("test", "device_map");
  if (c.quantization == "fp32") o.device_map = InFp32(o.device_map);
  o.offload_path = folder.File(c.name + ".offload");
  o.prefetch_depth = 0;
  absl::StatusOr<LoadedModel> m = LoadModel(c.path, o);
  ASSERT_TRUE(m.ok()) << m.status();
  const DeviceUsage& sim = *plan->Find(sim0);
  const DeviceUsage& cpu = *plan->Find(Location{Location::Tier::kCpu, 0});
  EXPECT_EQ(used(devices.Sim(0), MemoryKind::kWeights), sim.weights);
  EXPECT_EQ(used(devices.Sim(0), MemoryKind::kStaging), sim.staging);
  EXPECT_EQ(used(devices.host(), MemoryKind::kWeights) - host_weights, cpu.weights - host_only);
  EXPECT_EQ(used(devices.host(), MemoryKind::kStaging) - host_staging, cpu.staging);
  const std::vector<float> got = Generate(*m->model, 2);
  ASSERT_EQ(got.size(), resident.size());
  EXPECT_EQ(std::memcmp(got.data(), resident.data(), got.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Models, OffloadTest,
    ::testing::Values(Case{"tiny_llama", "tests/data/tiny_llama", "", "model.layers", 2},
                      Case{"tiny_gpt2", "tests/data/tiny_gpt2", "", "transformer.h", 2},
                      Case{"tiny_llama_q8_0", "tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf",
                           "", "model.layers", 2},
                      Case{"tiny_llama_int8", "tests/data/tiny_llama", "int8", "model.layers", 2},
                      Case{"tiny_llama_nf4", "tests/data/tiny_llama", "nf4", "model.layers", 2},
                      Case{"tiny_llama_fp4", "tests/data/tiny_llama", "fp4", "model.layers", 2},
                      Case{"smollm2_q4_1", kSmolLM2, "", "model.layers", 30},
                      Case{"smollm2_int8", kSmolLM2, "int8", "model.layers", 30},
                      Case{"smollm2_nf4", kSmolLM2, "nf4", "model.layers", 30},
                      // Q4_1 dequantized: the linear modules in fp32 by the map's precision.
                      Case{"smollm2_fp32", kSmolLM2, "fp32", "model.layers", 30}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

class OffloadErrorTest : public ::testing::Test {
 protected:
  absl::StatusOr<LoadedModel> Load(DeviceMap map, const std::string& offload, int depth = 2) {
    ModelLoadOptions o;
    o.pool = &pool_;
    o.device_map = std::move(map);
    o.offload_path = offload;
    o.prefetch_depth = depth;
    return LoadModel("tests/data/tiny_llama", o);
  }
  ThreadPool pool_{1};
};

TEST_F(OffloadErrorTest, DiskWithoutAnOffloadFileIsRefused) {
  DeviceMap map("test", "device_map");
  ASSERT_TRUE(map.AddKey("", At(Location::Tier::kDisk)).ok());
  absl::StatusOr<LoadedModel> m = Load(std::move(map), "");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("placed on disk, but there is no offload folder"),
            std::string::npos)
      << m.status();
}

TEST_F(OffloadErrorTest, AnUnwritableOffloadFileIsRefused) {
  DeviceMap map("test", "device_map");
  ASSERT_TRUE(map.AddKey("", At(Location::Tier::kDisk)).ok());
  absl::StatusOr<LoadedModel> m = Load(std::move(map), "/nonexistent-folder/x.offload");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cannot create the offload file /nonexistent-folder/x.offload"),
            std::string::npos)
      << m.status();
}

TEST_F(OffloadErrorTest, ALayerSplitAcrossPlacementsIsRefused) {
  OffloadFolder folder;
  DeviceMap map("test", "device_map");
  ASSERT_TRUE(map.AddKey("", At(Location::Tier::kCpu)).ok());
  ASSERT_TRUE(map.AddKey("model.layers.1.mlp", At(Location::Tier::kDisk)).ok());
  absl::StatusOr<LoadedModel> m = Load(std::move(map), folder.File("m.offload"));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers.1 would be split across placements"),
            std::string::npos)
      << m.status();
}

TEST_F(OffloadErrorTest, ATruncatedOffloadFileFailsTheForwardNotTheProcess) {
  OffloadFolder folder;
  const std::string file = folder.File("m.offload");
  DeviceMap map("test", "device_map");
  ASSERT_TRUE(map.AddKey("", At(Location::Tier::kDisk)).ok());
  // Depth 1: 2 staging slots for the 4 groups (embedding, 2 layers, head),
  // so every forward reads from the file again.
  absl::StatusOr<LoadedModel> m = Load(std::move(map), file, /*depth=*/1);
  ASSERT_TRUE(m.ok()) << m.status();
  CausalLM& model = *m->model;
  const int32_t tokens[] = {1, 2, 3};
  auto cache = model.NewCache(8);
  std::vector<float> logits;
  SequenceInput in{tokens, 0, cache.get()};
  const absl::Status first = model.Forward({&in, 1}, &logits);
  ASSERT_TRUE(first.ok()) << first;

  std::filesystem::resize_file(file, 100);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto c = model.NewCache(8);
    SequenceInput again{tokens, 0, c.get()};
    const absl::Status st = model.Forward({&again, 1}, &logits);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_NE(st.message().find("offload file " + file), std::string::npos) << st;
    EXPECT_NE(st.message().find("truncated"), std::string::npos) << st;
  }
}

}  // namespace
}  // namespace tierserve

namespace tierserve {
namespace {

TEST(SimCapacityTest, AMapThatDoesNotFitFailsAtLoadWithTheFigures) {
  ThreadPool pool(1);
  DeviceSet devices(SimDeviceOptions{64 << 10, 16e9, 1e-6});
  DeviceMap map("test", "device_map");
  ASSERT_TRUE(map.AddKey("", Placement{Location{Location::Tier::kSim, 0}, std::nullopt}).ok());
  ModelLoadOptions o;
  o.pool = &pool;
  o.devices = &devices;
  o.device_map = std::move(map);
  absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted) << m.status();
  const std::string message(m.status().message());
  EXPECT_NE(message.find(": sim:0: cannot allocate "), std::string::npos) << message;
  EXPECT_NE(message.find("64.0 KiB capacity"), std::string::npos) << message;
  // Nothing stays allocated by the failed load.
  EXPECT_EQ(devices.Sim(0)->usage().total(), 0);
}

}  // namespace
}  // namespace tierserve
