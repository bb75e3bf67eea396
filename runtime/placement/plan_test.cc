#include "runtime/placement/plan.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

const Location kCpu{Location::Tier::kCpu, 0};
const Location kDisk{Location::Tier::kDisk, 0};
Location Sim(int i) { return Location{Location::Tier::kSim, i}; }

ModuleSize Module(std::string group, std::string module, bool layer, int64_t resident,
                  int64_t offloaded) {
  ModuleSize m;
  m.group = std::move(group);
  m.module = std::move(module);
  m.layer = layer;
  m.resident_bytes = resident;
  m.offloaded_bytes = offloaded;
  return m;
}

// An embedding (1 KiB), `layers` decoder layers of two modules (2 x 512 B
// resident; offloaded, 2 x 2 KiB with `fp32_offload`, else the same), a
// final norm (host only, 64 B) and a head (1 KiB; 4 KiB offloaded in fp32).
// Sizes are multiples of 64, so staged groups pack without gaps.
std::vector<ModuleSize> Model(int layers, bool fp32_offload = true) {
  const int64_t f = fp32_offload ? 4 : 1;
  std::vector<ModuleSize> m;
  m.push_back(Module("model.embed_tokens", "model.embed_tokens", false, 1024, 1024));
  for (int l = 0; l < layers; ++l) {
    const std::string g = absl::StrCat("model.layers.", l);
    ModuleSize norm = Module("", g + ".input_layernorm.weight", true, 64, 64);
    norm.host_only = true;
    m.push_back(norm);
    m.push_back(Module(g, g + ".mlp.up_proj", true, 512, 512 * f));
    m.push_back(Module(g, g + ".mlp.down_proj", true, 512, 512 * f));
  }
  ModuleSize norm = Module("", "model.norm.weight", false, 64, 64);
  norm.host_only = true;
  m.push_back(norm);
  m.push_back(Module("lm_head", "lm_head", false, 1024, 1024 * f));
  return m;
}

std::vector<Location> Where(const PlacementReport& r) {
  std::vector<Location> out;
  for (const auto& [group, where] : r.groups) out.push_back(where);
  return out;
}

int64_t Weights(const PlacementReport& r, const Location& d) {
  const DeviceUsage* u = r.Find(d);
  return u == nullptr ? 0 : u->weights;
}

TEST(GroupSizesTest, StagedBytesPackEachImage64ByteAligned) {
  std::vector<ModuleSize> m = {Module("g", "g.a", true, 100, 100), Module("g", "g.b", true, 10, 10)};
  const std::vector<GroupSize> g = GroupSizes(m);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].offloaded_bytes, 110);
  EXPECT_EQ(g[0].staged_bytes, 128 + 10);
}

TEST(GroupSizesTest, SumsModulesByGroupInOrderAndLeavesHostVectorsOut) {
  const std::vector<GroupSize> g = GroupSizes(Model(2));
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g[0].name, "model.embed_tokens");
  EXPECT_EQ(g[1].name, "model.layers.0");
  EXPECT_TRUE(g[1].layer);
  EXPECT_EQ(g[1].resident_bytes, 1024);
  EXPECT_EQ(g[1].offloaded_bytes, 4096);
  EXPECT_EQ(g[1].staged_bytes, 4096);
  EXPECT_EQ(g[3].name, "lm_head");
}

TEST(MeasurePlacementTest, CountsWeightsKvStagingAndHeadroomWhereTheyLive) {
  Budgets b;
  b.accelerators = {{Sim(0), 100000}};
  b.kv_bytes = 400;  // 100 per layer
  b.staging_slots = 3;
  b.headroom = 0.1;
  // embed and layers 0-1 on sim:0, layer 2 on the cpu, layer 3 on disk, head on sim:0.
  const std::vector<Location> where = {Sim(0), Sim(0), Sim(0), kCpu, kDisk, Sim(0)};
  const PlacementReport r = MeasurePlacement(Model(4), where, Sim(0), b);
  const DeviceUsage* sim = r.Find(Sim(0));
  const DeviceUsage* cpu = r.Find(kCpu);
  const DeviceUsage* disk = r.Find(kDisk);
  ASSERT_NE(sim, nullptr);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(disk, nullptr);
  EXPECT_EQ(sim->weights, 4 * 1024);
  EXPECT_EQ(sim->kv, 400);  // the offloaded layers compute, and keep their KV, on sim:0
  EXPECT_EQ(sim->staging, 3 * 4096);
  EXPECT_EQ(sim->headroom, 10000);
  EXPECT_EQ(cpu->weights, 4096 + 5 * 64);  // layer 2 in fp32, and every norm
  EXPECT_EQ(cpu->staging, 3 * 4096);       // disk reads land in host slots first
  EXPECT_FALSE(cpu->budget.has_value());
  EXPECT_EQ(disk->weights, 4096);
  EXPECT_EQ(r.Overflow(), "");
}

TEST(MeasurePlacementTest, OnAHostExecutionDeviceTheCpuHoldsResidentSizesAndTheKv) {
  Budgets b;
  b.kv_bytes = 400;
  b.cpu = 7000;
  b.headroom = 0;
  const std::vector<Location> where = {kCpu, kCpu, kCpu, kDisk, kDisk, kCpu};
  const PlacementReport r = MeasurePlacement(Model(4), where, kCpu, b);
  const DeviceUsage* cpu = r.Find(kCpu);
  EXPECT_EQ(cpu->weights, 1024 + 2 * 1024 + 1024 + 5 * 64);
  EXPECT_EQ(cpu->kv, 400);
  EXPECT_EQ(cpu->staging, 3 * 4096);  // disk groups stage into host memory, in fp32 here
  EXPECT_THAT(r.Overflow(), HasSubstr("cpu needs"));
  EXPECT_THAT(r.Overflow(), HasSubstr("budget is 6.8 KiB"));
}

TEST(PlanPlacementTest, WithoutBudgetsEverythingRestsOnTheCpu) {
  absl::StatusOr<PlacementReport> r = PlanPlacement(Model(4), PlanStrategy::kAuto, Budgets{});
  ASSERT_TRUE(r.ok()) << r.status();
  for (const Location& l : Where(*r)) EXPECT_EQ(l, kCpu);
  EXPECT_EQ(r->execution, kCpu);
}

TEST(PlanPlacementTest, AModelThatFitsRestsWhollyOnTheAccelerator) {
  Budgets b;
  b.accelerators = {{Sim(0), 10000}};
  b.kv_bytes = 400;
  absl::StatusOr<PlacementReport> r = PlanPlacement(Model(4), PlanStrategy::kAuto, b);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const Location& l : Where(*r)) EXPECT_EQ(l, Sim(0));
  EXPECT_EQ(r->Find(Sim(0))->staging, 0);
  EXPECT_EQ(r->Find(Sim(0))->kv, 400);
}

// A plan is tight: it fits, and moving the first offloaded group onto the
// execution device as well would not.
TEST(PlanPlacementTest, SpillsInOrderReservingKvAndStagingAndIsTight) {
  for (int64_t budget : {6000, 7000, 8000, 8500}) {
    Budgets b;
    b.accelerators = {{Sim(0), budget}};
    b.kv_bytes = 400;
    b.headroom = 0.05;
    absl::StatusOr<PlacementReport> r =
        PlanPlacement(Model(6, false), PlanStrategy::kSequential, b);
    ASSERT_TRUE(r.ok()) << budget << ": " << r.status();
    EXPECT_EQ(r->Overflow(), "");
    std::vector<Location> where = Where(*r);
    size_t first_off = 0;
    while (first_off < where.size() && where[first_off] == Sim(0)) ++first_off;
    ASSERT_GT(first_off, 0u) << budget;
    ASSERT_LT(first_off, where.size()) << budget;
    for (size_t i = first_off; i < where.size(); ++i) EXPECT_EQ(where[i], kCpu) << budget;
    where[first_off] = Sim(0);
    EXPECT_NE(MeasurePlacement(Model(6, false), where, Sim(0), b).Overflow(), "") << budget;
  }
}

TEST(PlanPlacementTest, BalancedSpreadsOverAcceleratorsSequentialFillsTheFirst) {
  Budgets b;
  b.accelerators = {{Sim(1), 100000}, {Sim(0), 100000}};
  absl::StatusOr<PlacementReport> seq = PlanPlacement(Model(8), PlanStrategy::kSequential, b);
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(seq->execution, Sim(0));
  EXPECT_EQ(Weights(*seq, Sim(1)), 0);
  absl::StatusOr<PlacementReport> bal = PlanPlacement(Model(8), PlanStrategy::kBalanced, b);
  ASSERT_TRUE(bal.ok()) << bal.status();
  const int64_t a = Weights(*bal, Sim(0)), c = Weights(*bal, Sim(1));
  EXPECT_GT(c, 0);
  EXPECT_LE(std::abs(a - c), 2 * 1024) << a << " vs " << c;  // within the largest group, twice
  // Execution order is kept: sim:0 holds a prefix.
  const std::vector<Location> where = Where(*bal);
  EXPECT_EQ(where.front(), Sim(0));
  EXPECT_EQ(where.back(), Sim(1));
}

TEST(PlanPlacementTest, ACpuBudgetSpillsToDiskOnlyWithAnOffloadFolder) {
  Budgets b;
  b.cpu = 7000;
  b.headroom = 0;
  absl::StatusOr<PlacementReport> refused = PlanPlacement(Model(6, false), PlanStrategy::kAuto, b);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("no offload folder"));
  b.disk = true;
  absl::StatusOr<PlacementReport> r = PlanPlacement(Model(6, false), PlanStrategy::kAuto, b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(Weights(*r, kDisk), 0);
  EXPECT_EQ(r->Overflow(), "");
  EXPECT_EQ(Where(*r).front(), kCpu);
  EXPECT_EQ(Where(*r).back(), kDisk);
}

TEST(PlanPlacementTest, AnAcceleratorTooSmallForTheFirstGroupIsAnErrorWithFigures) {
  Budgets b;
  b.accelerators = {{Sim(0), 900}};
  absl::StatusOr<PlacementReport> r = PlanPlacement(Model(2), PlanStrategy::kAuto, b);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("nothing fits on sim:0"));
  EXPECT_THAT(r.status().message(), HasSubstr("model.embed_tokens"));
}

TEST(PlacementReportTest, TheDeviceMapPlacesEachGroupAsPlannedWithRangesForRuns) {
  Budgets b;
  b.accelerators = {{Sim(0), 8000}};
  absl::StatusOr<PlacementReport> r = PlanPlacement(Model(8, false), PlanStrategy::kSequential, b);
  ASSERT_TRUE(r.ok()) << r.status();
  const DeviceMap map = r->ToDeviceMap("test.yaml", "models[0].device_map");
  bool range = false;
  for (const DeviceMap::Entry& e : map.entries()) range |= e.key.find('-') != std::string::npos;
  EXPECT_TRUE(range);
  for (const auto& [group, where] : r->groups) {
    absl::StatusOr<Placement> p = map.Resolve(group + ".weight");
    ASSERT_TRUE(p.ok()) << group;
    EXPECT_EQ(p->device, where) << group;
  }
  absl::StatusOr<Placement> norm = map.Resolve("model.norm.weight");
  ASSERT_TRUE(norm.ok());
  EXPECT_EQ(norm->device, kCpu);
}

}  // namespace
}  // namespace tierserve
