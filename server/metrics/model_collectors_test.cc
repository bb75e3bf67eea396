#include "server/metrics/model_collectors.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

// "name{label=value,...}" -> value of every sample.
std::map<std::string, double> Samples(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> out;
  for (const auto& f : families) {
    for (const auto& m : f.metric) {
      std::string key = f.name + "{";
      for (const auto& l : m.label) key += l.name + "=" + l.value + ",";
      key += "}";
      out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

TEST(OffloadCollectorTest, ReportsThePublishedSnapshotWithBoundedLabels) {
  OffloadCollector c;
  EXPECT_TRUE(c.Collect().empty());
  c.AddModel("a", "cpu");
  c.AddModel("b", "sim:0");
  OffloadSnapshot s;
  s.groups_staged = 4;
  s.bytes_from_disk = 4000;
  s.bytes_to_execution = 0;
  s.transfer_seconds = 0.5;
  s.stall_seconds = 0.25;
  s.prefetch_hits = 3;
  s.activation_bytes = 64;
  s.activation_seconds = 0.125;
  c.Publish("a", s);
  c.Publish("unknown", s);  // ignored
  auto v = Samples(c.Collect());
  EXPECT_EQ(v["tierserve_offload_bytes_total{model=a,source=disk,destination=cpu,}"], 4000);
  EXPECT_EQ(v["tierserve_offload_bytes_total{model=a,source=activations,destination=next_stage,}"], 64);
  EXPECT_EQ(v.count("tierserve_offload_bytes_total{model=a,source=cpu,destination=cpu,}"), 0u);
  EXPECT_EQ(v["tierserve_offload_bytes_total{model=b,source=cpu,destination=sim:0,}"], 0);
  EXPECT_EQ(v["tierserve_offload_transfer_seconds_total{model=a,}"], 0.5);
  EXPECT_EQ(v["tierserve_offload_stall_seconds_total{model=a,}"], 0.25);
  EXPECT_EQ(v["tierserve_offload_groups_staged_total{model=a,}"], 4);
  EXPECT_EQ(v["tierserve_offload_prefetch_hits_total{model=a,}"], 3);
  EXPECT_EQ(v["tierserve_offload_activation_seconds_total{model=a,}"], 0.125);
  EXPECT_EQ(v.count("tierserve_offload_stall_seconds_total{model=unknown,}"), 0u);
}

TEST(ModelLoadCollectorTest, OneStateAtATimeAndLoadSecondsOnceKnown) {
  ModelLoadCollector c;
  c.AddModel("m");
  auto v = Samples(c.Collect());
  EXPECT_EQ(v["tierserve_model_state{model=m,state=loading,}"], 1);
  EXPECT_EQ(v["tierserve_model_state{model=m,state=serving,}"], 0);
  EXPECT_EQ(v["tierserve_model_state{model=m,state=failed,}"], 0);
  EXPECT_EQ(v.count("tierserve_model_load_seconds{model=m,}"), 0u);
  c.SetLoadSeconds("m", 1.5);
  c.SetState("m", ModelState::kServing);
  v = Samples(c.Collect());
  EXPECT_EQ(v["tierserve_model_state{model=m,state=loading,}"], 0);
  EXPECT_EQ(v["tierserve_model_state{model=m,state=serving,}"], 1);
  EXPECT_EQ(v["tierserve_model_load_seconds{model=m,}"], 1.5);
  c.SetState("m", ModelState::kFailed);
  v = Samples(c.Collect());
  EXPECT_EQ(v["tierserve_model_state{model=m,state=serving,}"], 0);
  EXPECT_EQ(v["tierserve_model_state{model=m,state=failed,}"], 1);
}

TEST(BuildInfoCollectorTest, IsOneWithVersionCommitAndCuda) {
  auto v = Samples(BuildInfoCollector("1.2.3", "0123456789ab", false).Collect());
  EXPECT_EQ(v["tierserve_build_info{version=1.2.3,commit=0123456789ab,cuda=false,}"], 1);
  v = Samples(BuildInfoCollector("1.2.3", "unknown", true).Collect());
  EXPECT_EQ(v["tierserve_build_info{version=1.2.3,commit=unknown,cuda=true,}"], 1);
}

}  // namespace
}  // namespace tierserve
