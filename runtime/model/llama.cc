// The Llama forward pass, top to bottom:
//   x = embed(tokens)
//   per layer:  x += o_proj(attention(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x))))
//               x += down_proj(silu(gate_proj(rms(x))) * up_proj(rms(x)))
//   logits = lm_head(rms(x))
// Shapes: H hidden, I intermediate, nh heads, nkv kv heads, hd head dim,
// V vocab, T rows in the batch.
#include "runtime/model/llama.h"

#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/attention.h"
#include "runtime/model/linear.h"
#include "runtime/model/module_loader.h"

namespace tierserve {
namespace {

struct LlamaLayer {
  Streamer::GroupId weights;  // the layer's Linears stage together
  F32Weight input_norm;  // [H]
  Linear q_proj;         // [nh*hd, H]
  Linear k_proj;         // [nkv*hd, H]
  Linear v_proj;         // [nkv*hd, H]
  Linear o_proj;         // [H, nh*hd]
  F32Weight post_norm;   // [H]
  Linear gate_proj;      // [I, H]
  Linear up_proj;        // [I, H]
  Linear down_proj;      // [H, I]
};

// Activations for T rows; resized per forward, reused across steps.
struct LlamaRunState {
  std::vector<float> x;       // [T, H] residual stream
  std::vector<float> xn;      // [T, H] normed
  std::vector<float> q;       // [T, nh*hd]
  std::vector<float> k;       // [T, nkv*hd]
  std::vector<float> v;       // [T, nkv*hd]
  std::vector<float> att;     // [T, nh*hd]
  std::vector<float> gate;    // [T, I]
  std::vector<float> up;      // [T, I]
  std::vector<float> cos_sin; // [T, hd]
  std::vector<float> last;    // [L, H] normed rows that need logits
};

class Llama final : public CausalLM {
 public:
  Llama(ModelConfig config, ThreadPool* pool, const Kernels& kernels)
      : c_(std::move(config)), pool_(pool), k_(kernels) {}

  absl::Status Load(ModuleLoader& loader) {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size, hd = c_.head_dim;
    const int64_t qd = c_.num_heads * hd, kvd = c_.num_kv_heads * hd;
    const bool ab = c_.attention_bias, mb = c_.mlp_bias;
      // A tied head is the embedding table itself.
    TS_ASSIGN_OR_RETURN(embed_, loader.LoadEmbedding("model.embed_tokens", c_.vocab_size, H));
    // In execution order, which is the order `device_map: auto` fills devices in.
    layers_.resize(c_.num_layers);
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      LlamaLayer& L = layers_[l];
      L.weights = loader.BeginGroup(absl::StrCat("model.layers.", l));
      TS_ASSIGN_OR_RETURN(L.input_norm, loader.LoadF32(p + "input_layernorm.weight", {H}));
      TS_ASSIGN_OR_RETURN(L.q_proj, loader.LoadLinear(p + "self_attn.q_proj", H, qd, ab));
      TS_ASSIGN_OR_RETURN(L.k_proj, loader.LoadLinear(p + "self_attn.k_proj", H, kvd, ab));
      TS_ASSIGN_OR_RETURN(L.v_proj, loader.LoadLinear(p + "self_attn.v_proj", H, kvd, ab));
      TS_ASSIGN_OR_RETURN(L.o_proj, loader.LoadLinear(p + "self_attn.o_proj", qd, H, ab));
      TS_ASSIGN_OR_RETURN(L.post_norm, loader.LoadF32(p + "post_attention_layernorm.weight", {H}));
      TS_ASSIGN_OR_RETURN(L.gate_proj, loader.LoadLinear(p + "mlp.gate_proj", H, I, mb));
      TS_ASSIGN_OR_RETURN(L.up_proj, loader.LoadLinear(p + "mlp.up_proj", H, I, mb));
      TS_ASSIGN_OR_RETURN(L.down_proj, loader.LoadLinear(p + "mlp.down_proj", I, H, mb));
      loader.EndGroup();
    }
    TS_ASSIGN_OR_RETURN(final_norm_, loader.LoadF32("model.norm.weight", {H}));
    if (!c_.tie_word_embeddings) {
      TS_ASSIGN_OR_RETURN(lm_head_, loader.LoadLinear("lm_head", H, c_.vocab_size, false));
    }
    TS_ASSIGN_OR_RETURN(streamer_, loader.FinishStreamer());
    inv_freq_ = RopeInverseFrequencies(c_);
    return absl::OkStatus();
  }

  const ModelConfig& config() const override { return c_; }

  int64_t KvDim() const override { return c_.num_kv_heads * c_.head_dim; }

  int64_t WeightBytes() const override {
    // The head reads its whole matrix each step; the embedding a row per token.
    int64_t b = (c_.tie_word_embeddings ? embed_ : lm_head_).WeightBytes();
    for (const LlamaLayer& L : layers_) {
      b += L.q_proj.WeightBytes() + L.k_proj.WeightBytes() + L.v_proj.WeightBytes() +
           L.o_proj.WeightBytes() + L.gate_proj.WeightBytes() + L.up_proj.WeightBytes() +
           L.down_proj.WeightBytes() + 2 * c_.hidden_size * static_cast<int64_t>(sizeof(float));
    }
    return b;
  }

  const Streamer& streamer() const override { return *streamer_; }

  absl::Status SetActivationTap(ActivationTap* tap) override {
    tap_ = tap;
    return absl::OkStatus();
  }

  absl::Status Forward(absl::Span<const SequenceInput> batch, std::vector<float>* logits) override {
    TS_RETURN_IF_ERROR(rows_.Build(batch, c_));
    const int64_t T = rows_.size(), H = c_.hidden_size, I = c_.intermediate_size;
    const int64_t hd = c_.head_dim, nh = c_.num_heads, nkv = c_.num_kv_heads;
    const int64_t qd = nh * hd, kvd = nkv * hd;
    LlamaRunState& s = state_;
    s.x.resize(T * H);
    s.xn.resize(T * H);
    s.q.resize(T * qd);
    s.k.resize(T * kvd);
    s.v.resize(T * kvd);
    s.att.resize(T * qd);
    s.gate.resize(T * I);
    s.up.resize(T * I);
    s.cos_sin.resize(T * hd);

    // Offloaded weights are acquired where they are used; the streamer has
    // the next ones on their way.
    streamer_->BeginForward();
    {
      TS_ASSIGN_OR_RETURN(Streamer::Lease embed, streamer_->Acquire(embed_.group()));
      for (int64_t t = 0; t < T; ++t) {
        embed_.Row(rows_.tokens[t], &s.x[t * H]);
        RopeCosSin(inv_freq_, rows_.pos[t], &s.cos_sin[t * hd]);
      }
    }

    for (int64_t l = 0; l < c_.num_layers; ++l) {
      const LlamaLayer& L = layers_[l];
      TS_ASSIGN_OR_RETURN(Streamer::Lease weights,
                          streamer_->Acquire(L.weights, s.x.data(), T * H * static_cast<int64_t>(sizeof(float))));
      // Attention block.
      RmsNormRows(s.x.data(), L.input_norm.data(), s.xn.data(), T);
      Tap("attn_norm", l, s.xn.data(), T, H);
      const Linear* qkv[] = {&L.q_proj, &L.k_proj, &L.v_proj};
      float* qkv_out[] = {s.q.data(), s.k.data(), s.v.data()};
      Linear::ForwardShared(qkv, s.xn.data(), T, qkv_out, pool_);
      Tap("Qcur", l, s.q.data(), T, qd);
      Tap("Kcur", l, s.k.data(), T, kvd);
      Tap("Vcur", l, s.v.data(), T, kvd);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          k_.rope_rotate_half(&s.q[t * qd], nh, hd, &s.cos_sin[t * hd]);
          k_.rope_rotate_half(&s.k[t * kvd], nkv, hd, &s.cos_sin[t * hd]);
          KvCache* cache = batch[rows_.seq[t]].cache;
          cache->Store(l, rows_.pos[t], &s.k[t * kvd], &s.v[t * kvd]);
        }
      });
      Tap("Qrope", l, s.q.data(), T, qd);
      Tap("Krope", l, s.k.data(), T, kvd);
      CausalAttention(k_, rows_, batch, l, s.q.data(), nh, nkv, hd, s.att.data(), pool_);
      Tap("kqv_out", l, s.att.data(), T, qd);
      L.o_proj.Forward(s.att.data(), T, s.xn.data(), pool_);
      Tap("attn_out", l, s.xn.data(), T, H);
      // The residual and the next norm, row by row.
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
        k_.add_in_place(&s.x[t0 * H], &s.xn[t0 * H], (t1 - t0) * H);
        for (int64_t t = t0; t < t1; ++t) k_.rms_norm(&s.x[t * H], L.post_norm.data(), &s.xn[t * H], H, c_.norm_eps);
      });
      Tap("ffn_inp", l, s.x.data(), T, H);
      Tap("ffn_norm", l, s.xn.data(), T, H);
      // MLP block.
      const Linear* gate_up[] = {&L.gate_proj, &L.up_proj};
      float* gate_up_out[] = {s.gate.data(), s.up.data()};
      Linear::ForwardShared(gate_up, s.xn.data(), T, gate_up_out, pool_);
      Tap("ffn_gate", l, s.gate.data(), T, I);
      Tap("ffn_up", l, s.up.data(), T, I);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) { k_.silu_mul(&s.gate[t0 * I], &s.up[t0 * I], (t1 - t0) * I); });
      Tap("ffn_swiglu", l, s.gate.data(), T, I);
      L.down_proj.Forward(s.gate.data(), T, s.xn.data(), pool_);
      Tap("ffn_out", l, s.xn.data(), T, H);
      ForRows(pool_, T, [&](int64_t t0, int64_t t1) { k_.add_in_place(&s.x[t0 * H], &s.xn[t0 * H], (t1 - t0) * H); });
      Tap("l_out", l, s.x.data(), T, H);
    }

    // Logits only for the rows that asked for them.
    const int64_t n_out = static_cast<int64_t>(rows_.logit_rows.size());
    s.last.resize(n_out * H);
    for (int64_t i = 0; i < n_out; ++i) {
      k_.rms_norm(&s.x[rows_.logit_rows[i] * H], final_norm_.data(), &s.last[i * H], H, c_.norm_eps);
    }
    logits->resize(n_out * c_.vocab_size);
    const Linear& head = c_.tie_word_embeddings ? embed_ : lm_head_;
    TS_ASSIGN_OR_RETURN(Streamer::Lease weights,
                        streamer_->Acquire(head.group(), s.last.data(), n_out * H * static_cast<int64_t>(sizeof(float))));
    head.Forward(s.last.data(), n_out, logits->data(), pool_);
    Tap("result_norm", -1, s.last.data(), n_out, H);
    Tap("result_output", -1, logits->data(), n_out, c_.vocab_size);
    return absl::OkStatus();
  }

 private:
  void Tap(std::string_view name, int64_t layer, const float* data, int64_t rows, int64_t cols) {
    if (tap_ != nullptr) tap_->Observe(name, layer, data, rows, cols);
  }

  void RmsNormRows(const float* x, const float* w, float* y, int64_t T) {
    const int64_t H = c_.hidden_size;
    ForRows(pool_, T, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) k_.rms_norm(x + t * H, w, y + t * H, H, c_.norm_eps);
    });
  }

  ModelConfig c_;
  ThreadPool* pool_;
  const Kernels& k_;  // the execution device's
  Linear embed_;                 // [V, H]; also the head when tied
  Linear lm_head_;               // [V, H] when not tied
  F32Weight final_norm_;         // [H]
  std::vector<LlamaLayer> layers_;
  std::unique_ptr<Streamer> streamer_;  // stages the offloaded groups
  std::vector<float> inv_freq_;  // [hd/2]
  BatchRows rows_;
  LlamaRunState state_;
  ActivationTap* tap_ = nullptr;  // not owned
};

}  // namespace

absl::StatusOr<std::unique_ptr<CausalLM>> LoadLlama(ModuleLoader& loader, ThreadPool* pool) {
  auto model = std::make_unique<Llama>(loader.source().config(), pool, loader.kernels());
  TS_RETURN_IF_ERROR(model->Load(loader));
  return model;
}

}  // namespace tierserve
