#include "runtime/placement/quantization_config.h"

#include "gtest/gtest.h"

namespace tierserve {
namespace {

TEST(QuantizationConfigTest, OffLeavesEverythingAsStored) {
  QuantizationConfig q;
  EXPECT_FALSE(q.enabled());
  EXPECT_EQ(q.LinearPrecision("model.layers.0.mlp.up_proj"), std::nullopt);
}

TEST(QuantizationConfigTest, DefaultSkipListKeepsTheHead) {
  QuantizationConfig q;
  q.load_in_8bit = true;
  EXPECT_EQ(q.LinearPrecision("model.layers.0.mlp.up_proj"), Precision::kInt8);
  EXPECT_EQ(q.LinearPrecision("lm_head"), std::nullopt);
  // A prefix at a dot boundary only.
  EXPECT_EQ(q.LinearPrecision("lm_head_extra"), Precision::kInt8);
}

TEST(QuantizationConfigTest, ExplicitSkipListReplacesTheDefault) {
  QuantizationConfig q;
  q.load_in_4bit = true;
  q.bnb_4bit_quant_type = QuantizationConfig::QuantType::kNf4;
  q.llm_int8_skip_modules = std::vector<std::string>{"model.layers.1"};
  EXPECT_EQ(q.LinearPrecision("lm_head"), Precision::kNf4);
  EXPECT_EQ(q.LinearPrecision("model.layers.1.mlp.up_proj"), std::nullopt);
  EXPECT_EQ(q.LinearPrecision("model.layers.10.mlp.up_proj"), Precision::kNf4);
  q.bnb_4bit_quant_type = QuantizationConfig::QuantType::kFp4;
  EXPECT_EQ(q.LinearPrecision("model.layers.10.mlp.up_proj"), Precision::kFp4);
}

}  // namespace
}  // namespace tierserve
