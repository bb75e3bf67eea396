#include "runtime/placement/module_report.h"

#include "gtest/gtest.h"

namespace tierserve {
namespace {

ModuleRecord R(std::string module, Precision p, int64_t bytes, std::string device = "cpu") {
  return ModuleRecord{std::move(module), std::move(device), p, bytes, bytes};
}

std::vector<std::string> Keys(const std::vector<ModuleRecord>& groups) {
  std::vector<std::string> out;
  for (const ModuleRecord& g : groups) out.push_back(g.module + " " + PrecisionName(g.precision));
  return out;
}

// Three llama layers: int8 linears, fp32 norms.
std::vector<ModuleRecord> Llama(Precision linear) {
  std::vector<ModuleRecord> r = {R("model.embed_tokens", Precision::kQ8_0, 100)};
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    r.push_back(R(p + "input_layernorm", Precision::kFp32, 1));
    for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"})
      r.push_back(R(p + "self_attn." + m, linear, 10));
    r.push_back(R(p + "post_attention_layernorm", Precision::kFp32, 1));
    for (const char* m : {"gate_proj", "up_proj", "down_proj"}) r.push_back(R(p + "mlp." + m, linear, 10));
  }
  r.push_back(R("model.norm", Precision::kFp32, 1));
  return r;
}

TEST(ModuleReportTest, FoldsSiblingsAndLayerRanges) {
  const std::vector<ModuleRecord> groups = GroupModules(Llama(Precision::kInt8));
  EXPECT_EQ(Keys(groups), (std::vector<std::string>{
                              "model.embed_tokens q8_0",
                              "model.layers.0-2.input_layernorm fp32",
                              "model.layers.0-2.self_attn int8",
                              "model.layers.0-2.post_attention_layernorm fp32",
                              "model.layers.0-2.mlp int8",
                              "model.norm fp32",
                          }));
  EXPECT_EQ(groups[2].bytes, 3 * 4 * 10);
  EXPECT_EQ(groups[4].parameters, 3 * 3 * 10);
}

TEST(ModuleReportTest, AUniformLayerIsOneKeyAndARunBreaksWhereItChanges) {
  std::vector<ModuleRecord> r = Llama(Precision::kFp32);
  // Layer 1's mlp in nf4 breaks the runs of the layers around it.
  for (ModuleRecord& m : r)
    if (m.module.rfind("model.layers.1.mlp.", 0) == 0) m.precision = Precision::kNf4;
  EXPECT_EQ(Keys(GroupModules(r)), (std::vector<std::string>{
                                       "model.embed_tokens q8_0",
                                       "model.layers.0 fp32",
                                       "model.layers.1.input_layernorm fp32",
                                       "model.layers.1.self_attn fp32",
                                       "model.layers.1.post_attention_layernorm fp32",
                                       "model.layers.1.mlp nf4",
                                       "model.layers.2 fp32",
                                       "model.norm fp32",
                                   }));
}

TEST(ModuleReportTest, WeightAndBiasOfOneModuleAreOneRecord) {
  const std::vector<ModuleRecord> groups = GroupModules(
      {R("h.0.ln", Precision::kFp32, 4), R("h.0.ln", Precision::kFp32, 4), R("h.0.mlp", Precision::kInt8, 9)});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].module, "h.0.ln");
  EXPECT_EQ(groups[0].bytes, 8);
  EXPECT_EQ(groups[1].module, "h.0.mlp");
}

TEST(ModuleReportTest, MemoryByDeviceAndPrecision) {
  const std::vector<MemoryLine> lines = MemoryByPrecision(Llama(Precision::kNf4));
  ASSERT_EQ(lines.size(), 3u);
  int64_t total = 0;
  for (const MemoryLine& l : lines) {
    total += l.bytes;
    if (l.precision == Precision::kNf4) {
      EXPECT_EQ(l.bytes, 3 * 7 * 10);
    }
  }
  EXPECT_EQ(total, 100 + 3 * (2 + 70) + 1);
}

}  // namespace
}  // namespace tierserve
