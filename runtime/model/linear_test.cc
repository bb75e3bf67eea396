#include "runtime/model/linear.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/module_loader.h"
#include "runtime/model/weight_source.h"

namespace tierserve {
namespace {

constexpr char kModel[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

// One decoder layer's Q, K, V and gate/up
// projections of SmolLM2, as the loader makes them with int8 activations.
class SharedLinearTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<WeightSource>> src = WeightSource::Open(kModel);
    ASSERT_TRUE(src.ok()) << src.status() << " (run scripts/fetch_model.sh)";
    src_ = std::move(*src);
    OffloadOptions offload;
    offload.devices = &devices_;
    loader_ = std::make_unique<ModuleLoader>(*src_, quantization_, device_map_, offload);
    loader_->set_activations(ActivationPrecision::kInt8);
    const ModelConfig& c = src_->config();
    H_ = c.hidden_size;
    for (auto [name, out] : {std::pair<const char*, int64_t>{"self_attn.q_proj", c.num_heads * c.head_dim},
                             {"self_attn.k_proj", c.num_kv_heads * c.head_dim},
                             {"self_attn.v_proj", c.num_kv_heads * c.head_dim},
                             {"mlp.gate_proj", c.intermediate_size},
                             {"mlp.up_proj", c.intermediate_size}}) {
      absl::StatusOr<Linear> l = loader_->LoadLinear(std::string("model.layers.3.") + name, H_, out, false);
      ASSERT_TRUE(l.ok()) << l.status();
      layers_.push_back(std::move(*l));
    }
  }

  QuantizationConfig quantization_;
  DeviceMap device_map_;
  DeviceSet devices_;
  std::unique_ptr<WeightSource> src_;
  std::unique_ptr<ModuleLoader> loader_;
  std::vector<Linear> layers_;
  int64_t H_ = 0;
};

// Several layers multiplying one x in one loop (their quantized x made once
// and shared) give each layer the bits it gives alone, for one row and for a
// batch whose rows are quantized by several threads.
TEST_F(SharedLinearTest, SharedInputGivesEachLayerItsOwnBits) {
  ThreadPool pool(3);
  for (int64_t M : {1, 9}) {
    std::mt19937 rng(static_cast<uint32_t>(M));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(M * H_));
    for (float& v : x) v = normal(rng);
    std::vector<std::vector<float>> alone, shared;
    std::vector<const Linear*> ptrs;
    std::vector<float*> outs;
    for (const Linear& l : layers_) {
      alone.emplace_back(static_cast<size_t>(M * l.out_features()));
      shared.emplace_back(static_cast<size_t>(M * l.out_features()), NAN);
      l.Forward(x.data(), M, alone.back().data(), &pool);
    }
    for (size_t i = 0; i < layers_.size(); ++i) {
      ptrs.push_back(&layers_[i]);
      outs.push_back(shared[i].data());
    }
    Linear::ForwardShared(ptrs, x.data(), M, outs, &pool);
    for (size_t i = 0; i < layers_.size(); ++i) {
      ASSERT_EQ(std::memcmp(alone[i].data(), shared[i].data(), alone[i].size() * sizeof(float)), 0)
          << "layer " << i << ", M " << M;
    }
  }
}

}  // namespace
}  // namespace tierserve
