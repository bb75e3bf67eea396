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

void ForRows(ThreadPool* pool, int64_t T, const std::function<void(int64_t, int64_t)>& fn) {
  if (T == 1) {
    fn(0, 1);
  } else {
    pool->ParallelFor(T, fn);
  }
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
                     int64_t head_dim, float* out, ThreadPool* pool, AttentionSchedule schedule) {
  const int64_t group = num_heads / num_kv_heads;
  const int64_t q_dim = num_heads * head_dim;
  const int64_t kv_dim = num_kv_heads * head_dim;
  const int64_t T = rows.size();
  const int64_t pf = AttentionPartialFloats(head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

  // Each sequence's blocks for this layer, asked of its cache once per block.
  // These tables and the span partials below are the calling thread's, kept
  // between calls (every layer of every step needs them; the workers only
  // read them during the call).
  struct Scratch {
    std::vector<int64_t> seq_len, first_span, first_partial;
    std::vector<std::vector<const void*>> keys, values;
    std::vector<float> partials;
  };
  thread_local Scratch tables;
  std::vector<int64_t>& seq_len = tables.seq_len;
  seq_len.assign(batch.size(), 0);
  for (int64_t t = 0; t < T; ++t) seq_len[rows.seq[t]] = std::max(seq_len[rows.seq[t]], rows.pos[t] + 1);
  std::vector<std::vector<const void*>>& key_blocks = tables.keys;
  std::vector<std::vector<const void*>>& value_blocks = tables.values;
  if (key_blocks.size() < batch.size()) {
    key_blocks.resize(batch.size());
    value_blocks.resize(batch.size());
  }
  for (size_t s = 0; s < batch.size(); ++s) {
    KvCache* cache = batch[s].cache;
    const int64_t bt = cache->block_tokens();
    key_blocks[s].clear();
    value_blocks[s].clear();
    for (int64_t b = 0; b * bt < seq_len[s]; ++b) {
      key_blocks[s].push_back(cache->KeyBlock(layer, b));
      value_blocks[s].push_back(cache->ValueBlock(layer, b));
    }
  }
  auto view = [&](int64_t t, int64_t g) {
    const int32_t s = rows.seq[t];
    KvView v;
    v.key_blocks = key_blocks[s].data();
    v.value_blocks = value_blocks[s].data();
    v.block_tokens = batch[s].cache->block_tokens();
    v.kv_dim = kv_dim;
    v.offset = g * head_dim;
    v.dtype = batch[s].cache->dtype();
    return v;
  };
  const int64_t threads = pool->num_threads();
  if (schedule == AttentionSchedule::kAuto) {
    // Enough rows for the threads, or no row longer than a span: an item
    // per row (and KV head), merged where it is computed. Otherwise (decode
    // of a few long rows) the spans of a row are shared out too, and merged
    // in a second loop.
    int64_t max_spans = 0;
    for (int64_t t = 0; t < T; ++t) max_spans = std::max(max_spans, AttentionSpans(rows.pos[t] + 1));
    schedule = T >= 4 * threads || max_spans == 1 ? AttentionSchedule::kByRow : AttentionSchedule::kBySpan;
  }
  // An item reads all KV heads of its positions (whole rows: one stream
  // through memory) unless that leaves too few items, then one KV head.
  auto kv_per_item = [&](int64_t items) { return items >= 4 * threads ? num_kv_heads : int64_t{1}; };

  if (schedule == AttentionSchedule::kByRow) {
    // An item is kpi KV heads of a row with all their query heads, or, when
    // even one KV head per item leaves fewer than two items per thread (one
    // short row: 3 KV heads on 2 threads would split 2:1), one query head:
    // a head's bits do not depend on the heads computed with it.
    const int64_t kpi = kv_per_item(T), chunks = num_kv_heads / kpi;
    const int64_t qpi = T * chunks < 2 * threads ? 1 : group;  // query heads per KV head and item
    const int64_t per_row = chunks * (group / qpi);
    pool->ParallelFor(T * per_row, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> partials;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t t = i / per_row, c = (i % per_row) / (group / qpi), j0 = (i % (group / qpi)) * qpi;
        const int64_t g0 = c * kpi;
        const int64_t n = rows.pos[t] + 1, spans = AttentionSpans(n);
        const int64_t heads = qpi == group ? kpi * group : qpi;
        partials.resize(static_cast<size_t>(heads * spans * pf));
        const KvView v = view(t, g0);
        const int64_t h0 = g0 * group + j0;  // the item's first query head
        const float* qg = q + t * q_dim + h0 * head_dim;
        for (int64_t sp = 0; sp < spans; ++sp) {
          k.attend_span(qg, qpi == group ? kpi : 1, qpi, head_dim, scale, v, n, sp, partials.data() + sp * pf,
                        spans * pf);
        }
        for (int64_t h = 0; h < heads; ++h) {
          k.merge_spans(partials.data() + h * spans * pf, spans, head_dim, out + t * q_dim + (h0 + h) * head_dim);
        }
      }
    });
    return;
  }
  // By span: an item per (row, span, KV heads); the partials of a row's
  // heads are laid out [head][span], so each head's spans are consecutive.
  std::vector<int64_t>& first_span = tables.first_span;
  std::vector<int64_t>& first_partial = tables.first_partial;
  first_span.assign(T + 1, 0);
  first_partial.assign(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t spans = AttentionSpans(rows.pos[t] + 1);
    first_span[t + 1] = first_span[t] + spans;
    first_partial[t + 1] = first_partial[t] + num_heads * spans * pf;
  }
  const int64_t kpi = kv_per_item(first_span[T]), chunks = num_kv_heads / kpi;
  std::vector<float>& partials = tables.partials;
  partials.resize(static_cast<size_t>(first_partial[T]));
  pool->ParallelFor(first_span[T] * chunks, [&](int64_t begin, int64_t end) {
    int64_t t = std::upper_bound(first_span.begin(), first_span.end(), begin / chunks) - first_span.begin() - 1;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t span_index = i / chunks, g0 = (i % chunks) * kpi;
      while (span_index >= first_span[t + 1]) ++t;
      const int64_t n = rows.pos[t] + 1, spans = AttentionSpans(n), sp = span_index - first_span[t];
      k.attend_span(q + t * q_dim + g0 * group * head_dim, kpi, group, head_dim, scale, view(t, g0), n, sp,
                    partials.data() + first_partial[t] + (g0 * group * spans + sp) * pf, spans * pf);
    }
  });
  pool->ParallelFor(T * num_heads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / num_heads, h = i % num_heads;
      const int64_t spans = AttentionSpans(rows.pos[t] + 1);
      k.merge_spans(partials.data() + first_partial[t] + h * spans * pf, spans, head_dim, out + t * q_dim + h * head_dim);
    }
  });
}

}  // namespace tierserve
