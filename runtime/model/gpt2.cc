// The GPT-2 forward pass, top to bottom (pre-LN):
//   x = wte(tokens) + wpe(positions)
//   per layer:  q, k, v = split(c_attn(ln_1(x)));  x += c_proj(attention(q, k, v))
//               x += mlp.c_proj(gelu_tanh(mlp.c_fc(ln_2(x))))
//   logits = wte^T-tied head(ln_f(x))
// Conv1D weights are stored [in, out]; they are transposed once at load.
// Shapes: H hidden (n_embd), I = n_inner (4H), nh heads, hd = H/nh, V vocab, T rows.
#include "runtime/model/gpt2.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/attention.h"
#include "runtime/model/linear.h"
#include "runtime/model/module_loader.h"

namespace tierserve {
namespace {

struct Gpt2Layer {
  Streamer::GroupId weights;  // the layer's Linears stage together
  F32Weight ln_1_w, ln_1_b;  // [H]
  Linear c_attn;             // [3H, H] (stored [H, 3H])
  Linear attn_proj;          // [H, H]
  F32Weight ln_2_w, ln_2_b;  // [H]
  Linear c_fc;               // [I, H]
  Linear mlp_proj;           // [H, I]
};

struct Gpt2RunState {
  std::vector<float> x;    // [T, H] residual stream
  std::vector<float> xn;   // [T, H]
  std::vector<float> qkv;  // [T, 3H]
  std::vector<float> q;    // [T, H]
  std::vector<float> att;  // [T, H]
  std::vector<float> h;    // [T, I]
  std::vector<float> last; // [L, H]
};

class Gpt2 final : public CausalLM {
 public:
  Gpt2(ModelConfig config, ThreadPool* pool, const Kernels& kernels)
      : c_(std::move(config)), pool_(pool), k_(kernels) {}

  absl::Status Load(ModuleLoader& loader) {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size;
    TS_ASSIGN_OR_RETURN(lm_head_, loader.LoadEmbedding("transformer.wte", c_.vocab_size, H));
    TS_ASSIGN_OR_RETURN(wpe_, loader.LoadF32("transformer.wpe.weight", {c_.max_position_embeddings, H}));
    // In execution order, which is the order `device_map: auto` fills devices in.
    layers_.resize(c_.num_layers);
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = absl::StrCat("transformer.h.", l, ".");
      Gpt2Layer& L = layers_[l];
      L.weights = loader.BeginGroup(absl::StrCat("transformer.h.", l));
      TS_ASSIGN_OR_RETURN(L.ln_1_w, loader.LoadF32(p + "ln_1.weight", {H}));
      TS_ASSIGN_OR_RETURN(L.ln_1_b, loader.LoadF32(p + "ln_1.bias", {H}));
      TS_ASSIGN_OR_RETURN(L.c_attn, loader.LoadLinear(p + "attn.c_attn", H, 3 * H, true, true));
      TS_ASSIGN_OR_RETURN(L.attn_proj, loader.LoadLinear(p + "attn.c_proj", H, H, true, true));
      TS_ASSIGN_OR_RETURN(L.ln_2_w, loader.LoadF32(p + "ln_2.weight", {H}));
      TS_ASSIGN_OR_RETURN(L.ln_2_b, loader.LoadF32(p + "ln_2.bias", {H}));
      TS_ASSIGN_OR_RETURN(L.c_fc, loader.LoadLinear(p + "mlp.c_fc", H, I, true, true));
      TS_ASSIGN_OR_RETURN(L.mlp_proj, loader.LoadLinear(p + "mlp.c_proj", I, H, true, true));
      loader.EndGroup();
    }
    TS_ASSIGN_OR_RETURN(ln_f_w_, loader.LoadF32("transformer.ln_f.weight", {H}));
    TS_ASSIGN_OR_RETURN(ln_f_b_, loader.LoadF32("transformer.ln_f.bias", {H}));
    TS_ASSIGN_OR_RETURN(streamer_, loader.FinishStreamer());
    return absl::OkStatus();
  }

  const ModelConfig& config() const override { return c_; }

  int64_t KvDim() const override { return c_.hidden_size; }

  int64_t WeightBytes() const override {
    int64_t b = lm_head_.WeightBytes();
    for (const Gpt2Layer& L : layers_) {
      b += L.c_attn.WeightBytes() + L.attn_proj.WeightBytes() + L.c_fc.WeightBytes() +
           L.mlp_proj.WeightBytes() + 4 * c_.hidden_size * static_cast<int64_t>(sizeof(float));
    }
    return b;
  }

  const Streamer& streamer() const override { return *streamer_; }

  absl::Status Forward(absl::Span<const SequenceInput> batch, std::vector<float>* logits) override {
    TS_RETURN_IF_ERROR(rows_.Build(batch, c_));
    const int64_t T = rows_.size(), H = c_.hidden_size, I = c_.intermediate_size;
    const int64_t nh = c_.num_heads, hd = c_.head_dim;
    Gpt2RunState& s = state_;
    s.x.resize(T * H);
    s.xn.resize(T * H);
    s.qkv.resize(T * 3 * H);
    s.q.resize(T * H);
    s.att.resize(T * H);
    s.h.resize(T * I);

    // Offloaded weights are acquired where they are used; the streamer has
    // the next ones on their way.
    streamer_->BeginForward();
    {
      TS_ASSIGN_OR_RETURN(Streamer::Lease wte, streamer_->Acquire(lm_head_.group()));
      for (int64_t t = 0; t < T; ++t) {
        lm_head_.Row(rows_.tokens[t], &s.x[t * H]);
        k_.add_in_place(&s.x[t * H], wpe_.data() + rows_.pos[t] * H, H);
      }
    }

    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const Gpt2Layer& L = layers_[l];
      TS_ASSIGN_OR_RETURN(Streamer::Lease weights,
                          streamer_->Acquire(L.weights, s.x.data(), T * H * static_cast<int64_t>(sizeof(float))));
      // Attention block.
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          k_.layer_norm(&s.x[t * H], L.ln_1_w.data(), L.ln_1_b.data(), &s.xn[t * H], H, c_.norm_eps);
      });
      L.c_attn.Forward(s.xn.data(), T, s.qkv.data(), pool_);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const float* row = &s.qkv[t * 3 * H];
          KvCache* cache = batch[rows_.seq[t]].cache;
          std::memcpy(&s.q[t * H], row, sizeof(float) * H);
          cache->Store(l, rows_.pos[t], row + H, row + 2 * H);
        }
      });
      CausalAttention(k_, rows_, batch, l, s.q.data(), nh, nh, hd, s.att.data(), pool_);
      L.attn_proj.Forward(s.att.data(), T, s.xn.data(), pool_);
      // The residual and the next norm, row by row.
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
        k_.add_in_place(&s.x[t0 * H], &s.xn[t0 * H], (t1 - t0) * H);
        for (int64_t t = t0; t < t1; ++t)
          k_.layer_norm(&s.x[t * H], L.ln_2_w.data(), L.ln_2_b.data(), &s.xn[t * H], H, c_.norm_eps);
      });
      // MLP block.
      L.c_fc.Forward(s.xn.data(), T, s.h.data(), pool_);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) { k_.gelu_tanh(&s.h[t0 * I], (t1 - t0) * I); });
      L.mlp_proj.Forward(s.h.data(), T, s.xn.data(), pool_);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) { k_.add_in_place(&s.x[t0 * H], &s.xn[t0 * H], (t1 - t0) * H); });
    }

    const int64_t n_out = static_cast<int64_t>(rows_.logit_rows.size());
    s.last.resize(n_out * H);
    for (int64_t i = 0; i < n_out; ++i) {
      k_.layer_norm(&s.x[rows_.logit_rows[i] * H], ln_f_w_.data(), ln_f_b_.data(), &s.last[i * H], H,
                     c_.norm_eps);
    }
    logits->resize(n_out * c_.vocab_size);
    TS_ASSIGN_OR_RETURN(Streamer::Lease wte,
                        streamer_->Acquire(lm_head_.group(), s.last.data(), n_out * H * static_cast<int64_t>(sizeof(float))));
    lm_head_.Forward(s.last.data(), n_out, logits->data(), pool_);
    return absl::OkStatus();
  }

 private:
  ModelConfig c_;
  ThreadPool* pool_;
  const Kernels& k_;  // the execution device's
  Linear lm_head_;  // tied to wte [V, H]
  F32Weight wpe_;   // [n_positions, H]
  F32Weight ln_f_w_, ln_f_b_;
  std::vector<Gpt2Layer> layers_;
  std::unique_ptr<Streamer> streamer_;  // stages the offloaded groups
  BatchRows rows_;
  Gpt2RunState state_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CausalLM>> LoadGpt2(ModuleLoader& loader, ThreadPool* pool) {
  auto model = std::make_unique<Gpt2>(loader.source().config(), pool, loader.kernels());
  TS_RETURN_IF_ERROR(model->Load(loader));
  return model;
}

}  // namespace tierserve
