// Device maps: placements and precisions, layer ranges, longest-prefix
// resolution at dot boundaries, and coverage of real models' tensors.
#include "server/device_map_config.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "runtime/model/weight_source.h"
#include "server/config_node.h"

namespace tierserve {
namespace {

constexpr char kPath[] = "models[0].device_map";

absl::StatusOr<DeviceMap> MapOf(const std::string& yaml) {
  return ReadDeviceMap(ConfigNode(YAML::Load(yaml), "x.yaml", kPath));
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<DeviceMap> m = MapOf(yaml);
  EXPECT_FALSE(m.ok()) << yaml;
  return m.ok() ? "" : std::string(m.status().message());
}

const Location kCpu{Location::Tier::kCpu, 0};
const Location kDisk{Location::Tier::kDisk, 0};
Location Cuda(int i) { return Location{Location::Tier::kCuda, i}; }

std::vector<std::string> TensorNames(const std::string& model_path) {
  absl::StatusOr<std::unique_ptr<WeightSource>> src = WeightSource::Open(model_path);
  EXPECT_TRUE(src.ok()) << src.status();
  return src.ok() ? (*src)->HfTensorNames() : std::vector<std::string>{};
}

TEST(ParseDeviceTest, Forms) {
  EXPECT_EQ(ParseLocation("cpu"), kCpu);
  EXPECT_EQ(ParseLocation("disk"), kDisk);
  EXPECT_EQ(ParseLocation("cuda:0"), Cuda(0));
  EXPECT_EQ(ParseLocation("cuda:7"), Cuda(7));
  EXPECT_EQ(ParseLocation("3"), Cuda(3));  // accelerate's bare GPU index
  EXPECT_EQ(ParseLocation("cuda:255"), Cuda(255));
  for (const char* bad : {"", "gpu", "cuda", "cuda:", "cuda:-1", "-1", "cuda:01", "cuda:256", "CPU",
                          "mps", "cuda:0 ", "cuda:1.5"}) {
    EXPECT_FALSE(ParseLocation(bad).has_value()) << bad;
  }
}

TEST(PrecisionTest, EveryNameRoundTrips) {
  const std::vector<std::string> names = absl::StrSplit(PrecisionNames(), ", ");
  EXPECT_EQ(names, (std::vector<std::string>{"fp32", "fp16", "bf16", "int8", "nf4", "fp4",
                                             "int8_wo", "int4_wo", "q8_0", "q4_0", "q4_1"}));
  for (const std::string& n : names) {
    std::optional<Precision> p = ParsePrecision(n);
    ASSERT_TRUE(p.has_value()) << n;
    EXPECT_EQ(PrecisionName(*p), n);
  }
  EXPECT_FALSE(ParsePrecision("int4").has_value());
  EXPECT_FALSE(ParsePrecision("FP16").has_value());
}

TEST(DeviceMapTest, Auto) {
  absl::StatusOr<DeviceMap> m = MapOf("auto");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->is_auto());
  EXPECT_TRUE(m->entries().empty());
  EXPECT_EQ(m->Resolve("model.norm.weight").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(m->CheckCovers({"model.norm.weight"}, "x.yaml").ok());
}

TEST(DeviceMapTest, PlacementForms) {
  absl::StatusOr<DeviceMap> m = MapOf(
      "model.embed_tokens: cuda:0\n"
      "model.layers.0: 1\n"
      "model.layers.1: cpu\n"
      "model.layers.2: {device: cuda:2, precision: int8}\n"
      "model.layers.3: {device: 0}\n"
      "lm_head: {device: disk, precision: nf4}\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->is_auto());
  ASSERT_EQ(m->entries().size(), 6u);
  EXPECT_EQ(*m->Resolve("model.embed_tokens.weight"), (Placement{Cuda(0), std::nullopt}));
  EXPECT_EQ(*m->Resolve("model.layers.0.mlp.up_proj.weight"), (Placement{Cuda(1), std::nullopt}));
  EXPECT_EQ(*m->Resolve("model.layers.1.mlp.up_proj.weight"), (Placement{kCpu, std::nullopt}));
  EXPECT_EQ(*m->Resolve("model.layers.2.mlp.up_proj.weight"),
            (Placement{Cuda(2), Precision::kInt8}));
  EXPECT_EQ(*m->Resolve("model.layers.3.mlp.up_proj.weight"), (Placement{Cuda(0), std::nullopt}));
  EXPECT_EQ(*m->Resolve("lm_head.weight"), (Placement{kDisk, Precision::kNf4}));
  EXPECT_EQ(m->Resolve("lm_head.weight")->ToString(), "disk (nf4)");
  EXPECT_EQ(m->Resolve("model.layers.0.mlp.up_proj.weight")->ToString(), "cuda:1");
}

TEST(DeviceMapTest, EveryPrecisionIsAccepted) {
  const std::vector<std::string> names = absl::StrSplit(PrecisionNames(), ", ");
  ASSERT_EQ(names.size(), 11u);
  for (const std::string& name : names) {
    absl::StatusOr<DeviceMap> m = MapOf("lm_head: {device: cpu, precision: " + name + "}");
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(PrecisionName(*m->entries()[0].placement.precision), name);
  }
}

TEST(DeviceMapTest, BadPlacements) {
  EXPECT_EQ(
      ErrorOf("lm_head: gpu"),
      "x.yaml: models[0].device_map.lm_head: \"gpu\" is not a placement; expected cuda:N, a GPU "
      "index N, sim:N, cpu or disk, or a map {device: ..., precision: ...}");
  EXPECT_EQ(
      ErrorOf("lm_head: {device: cuda:0, precision: int3}"),
      "x.yaml: models[0].device_map.lm_head.precision: \"int3\" is not one of fp32, fp16, bf16, "
      "int8, nf4, fp4, int8_wo, int4_wo, q8_0, q4_0, q4_1");
  EXPECT_EQ(
      ErrorOf("lm_head: {device: tpu}"),
      "x.yaml: models[0].device_map.lm_head.device: \"tpu\" is not a device; expected cuda:N, a "
      "GPU index N, sim:N, cpu or disk");
  EXPECT_EQ(
      ErrorOf("lm_head: {precision: int8}"),
      "x.yaml: models[0].device_map.lm_head: no device; expected a map {device: <cuda:N, a GPU "
      "index N, sim:N, cpu or disk>, precision: <optional>}");
  EXPECT_EQ(
      ErrorOf("lm_head: {device: cpu, dtype: int8}"),
      "x.yaml: models[0].device_map.lm_head.dtype: unknown key; known keys: device, precision");
  EXPECT_EQ(
      ErrorOf("lm_head: -1"),
      "x.yaml: models[0].device_map.lm_head: \"-1\" is not a placement; expected cuda:N, a GPU "
      "index N, sim:N, cpu or disk, or a map {device: ..., precision: ...}");
  EXPECT_NE(ErrorOf("lm_head: [cpu]").find("models[0].device_map.lm_head: got a list"),
            std::string::npos);
  EXPECT_NE(ErrorOf("lm_head:").find("models[0].device_map.lm_head: got no value"),
            std::string::npos);
}

TEST(DeviceMapTest, PlannedMapsRecordTheirStrategy) {
  for (const auto& [text, strategy] :
       {std::pair<const char*, PlanStrategy>{"auto", PlanStrategy::kAuto},
        {"balanced", PlanStrategy::kBalanced},
        {"sequential", PlanStrategy::kSequential}}) {
    absl::StatusOr<DeviceMap> m = MapOf(text);
    ASSERT_TRUE(m.ok()) << text << ": " << m.status();
    EXPECT_TRUE(m->is_auto());
    EXPECT_EQ(m->strategy(), strategy) << text;
    EXPECT_TRUE(m->entries().empty());
  }
}

TEST(DeviceMapTest, BadMaps) {
  constexpr char kForms[] =
      "expected auto, balanced, sequential (planned from max_memory) or a map from module-path "
      "prefix to placement";
  EXPECT_EQ(ErrorOf("balanced_low_0"),
            absl::StrCat("x.yaml: models[0].device_map: \"balanced_low_0\" is not a device map; ",
                         kForms));
  EXPECT_EQ(ErrorOf("{}"),
            absl::StrCat("x.yaml: models[0].device_map: an empty map places nothing; ", kForms));
  EXPECT_EQ(ErrorOf("[cpu]"),
            absl::StrCat("x.yaml: models[0].device_map: a list is not a device map; ", kForms));
  EXPECT_EQ(ErrorOf("lm_head: cpu\nlm_head: disk"),
            "x.yaml: models[0].device_map.lm_head: duplicate key; each key may appear once");
}

TEST(DeviceMapTest, RangesExpandToOnePrefixPerLayer) {
  absl::StatusOr<DeviceMap> m = MapOf("model.layers.0-2: cuda:0\ntransformer.h.4-5: disk\n");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->entries().size(), 5u);
  const char* expected[] = {"model.layers.0", "model.layers.1", "model.layers.2", "transformer.h.4",
                            "transformer.h.5"};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(m->entries()[i].prefix, expected[i]);
  EXPECT_EQ(m->entries()[1].key, "model.layers.0-2");
  EXPECT_EQ(m->entries()[3].key, "transformer.h.4-5");
  EXPECT_EQ(m->Resolve("model.layers.2.self_attn.q_proj.weight")->device, Cuda(0));
  EXPECT_EQ(m->Resolve("transformer.h.5.attn.c_attn.bias")->device, kDisk);
  EXPECT_FALSE(m->Resolve("model.layers.3.self_attn.q_proj.weight").ok());
  EXPECT_FALSE(m->Resolve("transformer.h.3.ln_1.weight").ok());
}

TEST(DeviceMapTest, RangeInsideAPathAndSingleLayerRange) {
  absl::StatusOr<DeviceMap> m =
      MapOf("model.layers.0-1.mlp: disk\nmodel.layers.7-7: cpu\n\"\": 0\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Resolve("model.layers.1.mlp.down_proj.weight")->device, kDisk);
  EXPECT_EQ(m->Resolve("model.layers.1.self_attn.q_proj.weight")->device, Cuda(0));
  EXPECT_EQ(m->Resolve("model.layers.7.self_attn.q_proj.weight")->device, kCpu);
}

TEST(DeviceMapTest, BadKeys) {
  EXPECT_EQ(ErrorOf("model.layers.14-3: cpu"),
            "x.yaml: models[0].device_map[\"model.layers.14-3\"]: the range 14-3 runs backwards; "
            "expected lo-hi with lo <= hi");
  EXPECT_EQ(
      ErrorOf("model.layers.0-99999: cpu"),
      "x.yaml: models[0].device_map[\"model.layers.0-99999\"]: the range 0-99999 spans 100000 "
      "layers; expected at most 4096");
  EXPECT_EQ(
      ErrorOf("model.layers.0-1.x.2-3: cpu"),
      "x.yaml: models[0].device_map[\"model.layers.0-1.x.2-3\"]: has two ranges (0-1 and 2-3); "
      "expected at most one range per key");
  const std::string not_a_path =
      "not a module path; expected a module path of dot-separated names made of letters, digits "
      "and _ "
      "(model.layers.3), where one part may be a layer range lo-hi (model.layers.0-14), or \"\" "
      "for "
      "everything";
  EXPECT_EQ(ErrorOf("model..norm: cpu"),
            "x.yaml: models[0].device_map[\"model..norm\"]: " + not_a_path);
  for (const char* bad : {"model.: cpu", ".model: cpu", "\"model layers\": cpu",
                          "model.layers.01-3: cpu", "model.layers.a-b: cpu", "model.layers.-3: cpu",
                          "model.layers.1-: cpu", "model.layers.1-2-3: cpu", "model/layers: cpu"}) {
    EXPECT_NE(ErrorOf(bad).find(not_a_path), std::string::npos) << bad;
  }
}

TEST(DeviceMapTest, LargestAllowedRangeIsAccepted) {
  absl::StatusOr<DeviceMap> m = MapOf("model.layers.0-4095: cpu");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->entries().size(), 4096u);
}

// Found with tests/fuzz/yaml_config_fuzz: 300 keys of 4096 layers each (7 KB of
// YAML) expanded to 1.2 million entries, 13 s and 590 MB under ASan.
TEST(DeviceMapTest, ExpandedRangesAreBoundedAcrossTheWholeMap) {
  std::string sixteen;
  for (int i = 0; i < 16; ++i) absl::StrAppend(&sixteen, "m", i, ".layers.0-4095: cpu\n");
  absl::StatusOr<DeviceMap> m = MapOf(sixteen);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->entries().size(), 16u * 4096u);
  EXPECT_EQ(ErrorOf(sixteen + "m16.layers.0: cpu"),
            "x.yaml: models[0].device_map[\"m16.layers.0\"]: makes the map place more than 65536 "
            "module paths once ranges are expanded; expected fewer, wider keys");
  std::string found;
  for (int i = 0; i < 300; ++i) absl::StrAppend(&found, "m", i, ".0-4095: cpu\n");
  EXPECT_NE(ErrorOf(found).find("makes the map place more than 65536 module paths"),
            std::string::npos);
}

TEST(DeviceMapTest, AModulePathIsPlacedOnce) {
  EXPECT_EQ(
      ErrorOf("model.layers.0-14: cpu\nmodel.layers.3: cuda:0"),
      "x.yaml: models[0].device_map[\"model.layers.3\"]: model.layers.3 is already placed by the "
      "key \"model.layers.0-14\"; each module path may be placed once");
  EXPECT_EQ(
      ErrorOf("model.layers.0-3: cpu\nmodel.layers.3-5: cpu"),
      "x.yaml: models[0].device_map[\"model.layers.3-5\"]: model.layers.3 is already placed by "
      "the key \"model.layers.0-3\"; each module path may be placed once");
}

TEST(DeviceMapTest, LongestPrefixAtDotBoundaries) {
  absl::StatusOr<DeviceMap> m = MapOf(
      "model: cpu\n"
      "model.layers.1: cuda:0\n"
      "model.layers.1.mlp: disk\n"
      "model.layers.10.mlp.up_proj: cuda:1\n");
  ASSERT_TRUE(m.ok()) << m.status();
  // model.layers.1 must not capture layers 10-19.
  EXPECT_EQ(m->Resolve("model.layers.10.self_attn.q_proj.weight")->device, kCpu);
  EXPECT_EQ(m->Resolve("model.layers.12.mlp.down_proj.weight")->device, kCpu);
  EXPECT_EQ(m->Resolve("model.layers.1.self_attn.q_proj.weight")->device, Cuda(0));
  EXPECT_EQ(m->Resolve("model.layers.1")->device, Cuda(0));
  EXPECT_EQ(m->Resolve("model.layers.1.mlp.down_proj.weight")->device, kDisk);
  EXPECT_EQ(m->Resolve("model.layers.10.mlp.up_proj.weight")->device, Cuda(1));
  EXPECT_EQ(m->Resolve("model.layers.10.mlp.up_projx.weight")->device, kCpu);
  // "model" is not a prefix of "modelx" nor of "lm_head".
  absl::StatusOr<Placement> other = m->Resolve("modelx.weight");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.status().message(), "x.yaml: models[0].device_map: no key places modelx.weight");
  EXPECT_FALSE(m->Resolve("lm_head.weight").ok());
}

TEST(DeviceMapTest, EmptyPrefixPlacesEverythingNotPlacedOtherwise) {
  absl::StatusOr<DeviceMap> m = MapOf("\"\": cpu\nlm_head: disk\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Resolve("lm_head.weight")->device, kDisk);
  EXPECT_EQ(m->Resolve("lm_head")->device, kDisk);
  EXPECT_EQ(m->Resolve("lm_headx.weight")->device, kCpu);
  EXPECT_EQ(m->Resolve("anything.at.all")->device, kCpu);
  const DeviceMap everything =
      DeviceMap::Everything(Placement{kCpu, std::nullopt}, "x.yaml", kPath);
  EXPECT_EQ(everything.Resolve("transformer.h.0.ln_1.weight")->device, kCpu);
}

class SmolLm2CoverageTest : public ::testing::Test {
 protected:
  static constexpr char kModel[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  void SetUp() override {
    if (!std::filesystem::exists(kModel))
      GTEST_FAIL() << kModel << " is missing: run scripts/fetch_model.sh";
    names_ = TensorNames(kModel);
    ASSERT_EQ(names_.size(), 272u);
  }
  std::vector<std::string> names_;
};

TEST_F(SmolLm2CoverageTest, ExplicitPrefixesCoverEveryTensor) {
  absl::StatusOr<DeviceMap> m = MapOf(
      "model.embed_tokens: cuda:0\n"
      "model.layers.0-14: cuda:0\n"
      "model.layers.15-29: {device: cpu, precision: int8}\n"
      "model.norm: cuda:0\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->CheckCovers(names_, "x.yaml").ok());
  EXPECT_TRUE(m->CheckEveryKeyUsed(names_, "x.yaml").ok());
  int on_cpu = 0;
  for (const std::string& n : names_) on_cpu += m->Resolve(n)->device == kCpu;
  EXPECT_EQ(on_cpu, 15 * 9);
}

TEST_F(SmolLm2CoverageTest, UncoveredTensorsAreNamed) {
  absl::StatusOr<DeviceMap> m = MapOf("model.embed_tokens: cpu\nmodel.layers.0-28: cpu\n");
  ASSERT_TRUE(m.ok()) << m.status();
  // Sorted names: model.layers.29.* (9 tensors) come before model.norm.weight.
  EXPECT_EQ(m->CheckCovers(names_, "x.yaml").message(),
            "x.yaml: models[0].device_map: tensor model.layers.29.input_layernorm.weight has no "
            "placement (nor have 9 more tensors); every tensor needs a key that is a prefix of its "
            "name, such as \"model.layers.29.input_layernorm\", or \"\" for everything not placed "
            "otherwise");
  absl::StatusOr<DeviceMap> no_norm = MapOf("model.embed_tokens: cpu\nmodel.layers: cpu\n");
  ASSERT_TRUE(no_norm.ok());
  EXPECT_EQ(
      no_norm->CheckCovers(names_, "x.yaml").message(),
      "x.yaml: models[0].device_map: tensor model.norm.weight has no placement; every tensor "
      "needs a key that is a prefix of its name, such as \"model.norm\", or \"\" for everything "
      "not placed otherwise");
}

TEST_F(SmolLm2CoverageTest, KeysThatMatchNoTensorAreErrorsWithTheNearestPaths) {
  absl::StatusOr<DeviceMap> typo = MapOf("\"\": cpu\nmodel.layers.3.mlp.up_prj: disk\n");
  ASSERT_TRUE(typo.ok());
  EXPECT_TRUE(typo->CheckCovers(names_, "x.yaml").ok());
  EXPECT_EQ(std::string(typo->CheckEveryKeyUsed(names_, "x.yaml").message()),
            "x.yaml: models[0].device_map[\"model.layers.3.mlp.up_prj\"]: model.layers.3.mlp.up_prj "
            "matches no module of the model; keys must be module paths of the model; the nearest "
            "are model.layers.3.mlp.up_proj, model.layers.0.mlp.up_proj, "
            "model.layers.1.mlp.up_proj");
  // There are 30 layers.
  absl::StatusOr<DeviceMap> too_many = MapOf("\"\": cpu\nmodel.layers.0-31: cpu\n");
  ASSERT_TRUE(too_many.ok());
  EXPECT_NE(
      too_many->CheckEveryKeyUsed(names_, "x.yaml")
          .message()
          .find("models[0].device_map[\"model.layers.0-31\"]: model.layers.30 matches no module"),
      std::string::npos);
}

TEST(TinyModelCoverageTest, HfLlamaGgufLlamaAndGpt2) {
  const std::vector<std::string> llama = TensorNames("tests/data/tiny_llama");
  const std::vector<std::string> gguf =
      TensorNames("tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf");
  const std::vector<std::string> gpt2 = TensorNames("tests/data/tiny_gpt2");
  ASSERT_FALSE(llama.empty());
  ASSERT_FALSE(gpt2.empty());

  absl::StatusOr<DeviceMap> llama_map =
      MapOf("model.embed_tokens: 0\nmodel.layers.0-1: cpu\nmodel.norm: cpu\nlm_head: disk\n");
  ASSERT_TRUE(llama_map.ok()) << llama_map.status();
  for (const auto* names : {&llama, &gguf}) {
    EXPECT_TRUE(llama_map->CheckCovers(*names, "x.yaml").ok());
    EXPECT_TRUE(llama_map->CheckEveryKeyUsed(*names, "x.yaml").ok());
  }
  EXPECT_EQ(llama_map->Resolve("lm_head.weight")->device, kDisk);
  absl::StatusOr<DeviceMap> no_embed = MapOf("model.layers.0-1: cpu\nlm_head: cpu\n");
  ASSERT_TRUE(no_embed.ok());
  EXPECT_NE(no_embed->CheckCovers(llama, "x.yaml")
                .message()
                .find("tensor model.embed_tokens.weight has no placement (nor has 1 more tensor);"),
            std::string::npos);

  absl::StatusOr<DeviceMap> gpt2_map = MapOf(
      "transformer.wte: cpu\ntransformer.wpe: cpu\ntransformer.h.0-1: disk\ntransformer.ln_f: "
      "cpu\n");
  ASSERT_TRUE(gpt2_map.ok()) << gpt2_map.status();
  EXPECT_TRUE(gpt2_map->CheckCovers(gpt2, "x.yaml").ok());
  EXPECT_TRUE(gpt2_map->CheckEveryKeyUsed(gpt2, "x.yaml").ok());
  // A llama map leaves every GPT-2 tensor unplaced, and names the first.
  EXPECT_NE(llama_map->CheckCovers(gpt2, "x.yaml")
                .message()
                .find("tensor transformer.h.0.attn.c_attn.bias has no placement (nor have 27 more "
                      "tensors)"),
            std::string::npos);
}

}  // namespace
}  // namespace tierserve
