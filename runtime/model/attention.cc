#include "runtime/model/attention.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace tierserve {

absl::Status BatchRows::Build(absl::Span<const SequenceInput> batch, const ModelConfig& config) {
  tokens.clear();
  seq.clear();
  pos.clear();
  logit_rows.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    const int64_t n = static_cast<int64_t>(in.tokens.size());
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
    if (in.cache == nullptr) return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no cache"));
    if (in.start_pos < 0 || in.start_pos + n > in.cache->capacity() ||
        in.start_pos + n > config.max_position_embeddings) {
      return absl::OutOfRangeError(absl::StrCat(
          "sequence ", s, " would reach position ", in.start_pos + n, "; the limit is ",
          std::min(in.cache->capacity(), config.max_position_embeddings)));
    }
    for (int64_t i = 0; i < n; ++i) {
      const int32_t tok = in.tokens[i];
      if (tok < 0 || tok >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", tok, " is outside the vocabulary [0, ",
                                                       config.vocab_size, ")"));
      }
      if (!in.skip_logits && (in.all_logits || i == n - 1)) logit_rows.push_back(size());
      tokens.push_back(tok);
      seq.push_back(static_cast<int32_t>(s));
      pos.push_back(in.start_pos + i);
    }
  }
  return absl::OkStatus();
}

std::vector<float> RopeInverseFrequencies(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    inv[i] = 1.0f / std::pow(c.rope_theta, exponent);
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == "linear") {
    for (float& f : inv) f /= rs.factor;
  } else if (rs.type == "llama3") {
    const float orig = static_cast<float>(rs.original_max_position_embeddings);
    const float low_wavelen = orig / rs.low_freq_factor;
    const float high_wavelen = orig / rs.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth =
            (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0f - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  return inv;
}

void RopeCosSin(const std::vector<float>& inv_freq, int64_t pos, float* cos_sin) {
  const size_t half = inv_freq.size();
  for (size_t i = 0; i < half; ++i) {
    // The angle is rounded to fp32 as HF's fp32 matmul does; cos/sin then
    // evaluated in double and rounded once.
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cos_sin[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
    cos_sin[half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

void CausalAttention(const Kernels& k, const BatchRows& rows, absl::Span<const SequenceInput> batch,
                     int64_t layer, const float* q, int64_t num_heads, int64_t num_kv_heads,
                     int64_t head_dim, float* out, ThreadPool* pool) {
  const int64_t group = num_heads / num_kv_heads;
  const int64_t q_dim = num_heads * head_dim;
  const int64_t kv_dim = num_kv_heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  pool->ParallelFor(rows.size() * num_heads, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / num_heads, h = i % num_heads;
      const int64_t kvh = h / group;
      const int64_t n = rows.pos[t] + 1;
      KvCache* cache = batch[rows.seq[t]].cache;
      const float* qh = q + t * q_dim + h * head_dim;
      const int64_t bt = cache->block_tokens();
      if (static_cast<int64_t>(scores.size()) < n) scores.resize(n);
      // Block by block: a block's rows are contiguous, kv_dim floats apart.
      for (int64_t p0 = 0; p0 < n; p0 += bt) {
        const float* keys = cache->KeyRow(layer, p0) + kvh * head_dim;
        const int64_t len = std::min(bt, n - p0);
        for (int64_t i = 0; i < len; ++i) scores[p0 + i] = k.dot(qh, keys + i * kv_dim, head_dim) * scale;
      }
      k.softmax(scores.data(), n);
      float* o = out + t * q_dim + h * head_dim;
      for (int64_t d = 0; d < head_dim; ++d) o[d] = 0.0f;
      for (int64_t p0 = 0; p0 < n; p0 += bt) {
        const float* values = cache->ValueRow(layer, p0) + kvh * head_dim;
        const int64_t len = std::min(bt, n - p0);
        for (int64_t i = 0; i < len; ++i) k.axpy(scores[p0 + i], values + i * kv_dim, o, head_dim);
      }
    }
  });
}

}  // namespace tierserve
