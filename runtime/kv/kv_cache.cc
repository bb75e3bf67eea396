#include "runtime/kv/kv_cache.h"

#include <algorithm>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/common/half.h"

namespace tierserve {
namespace {

// Element i of row r of a block: keys transposed (i * bt + r), values by
// position (r * kv_dim + i).
template <typename T, typename F>
void ForEachElement(void* key_block, void* value_block, int64_t bt, int64_t kv_dim, int64_t r, F f) {
  T* k = static_cast<T*>(key_block) + r;
  T* v = static_cast<T*>(value_block) + r * kv_dim;
  for (int64_t i = 0; i < kv_dim; ++i) f(i, k[i * bt], v[i]);
}

}  // namespace

void KvCache::Store(int64_t layer, int64_t pos, const float* key, const float* value) {
  const int64_t bt = block_tokens(), b = pos / bt, r = pos % bt;
  void* kb = KeyBlock(layer, b);
  void* vb = ValueBlock(layer, b);
  if (dtype() == DType::kF16) {
    // Rounded as F32ToF16 rounds (to nearest even), eight at a time where
    // the CPU converts in hardware (F16C: every x86-64-v3 build); NaNs keep
    // a NaN's bits either way, not necessarily the same ones.
    thread_local std::vector<uint16_t> k16, v16;
    const int64_t n = kv_dim();
    k16.resize(static_cast<size_t>(n));
    v16.resize(static_cast<size_t>(n));
    int64_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(&k16[i]),
                       _mm256_cvtps_ph(_mm256_loadu_ps(key + i), _MM_FROUND_TO_NEAREST_INT));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(&v16[i]),
                       _mm256_cvtps_ph(_mm256_loadu_ps(value + i), _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; i < n; ++i) {
      k16[i] = F32ToF16(key[i]);
      v16[i] = F32ToF16(value[i]);
    }
    ForEachElement<uint16_t>(kb, vb, bt, n, r, [&](int64_t j, uint16_t& k, uint16_t& v) {
      k = k16[j];
      v = v16[j];
    });
  } else {
    ForEachElement<float>(kb, vb, bt, kv_dim(), r, [&](int64_t i, float& k, float& v) {
      k = key[i];
      v = value[i];
    });
  }
}

void KvCache::Load(int64_t layer, int64_t pos, float* key, float* value) {
  const int64_t bt = block_tokens(), b = pos / bt, r = pos % bt;
  void* kb = KeyBlock(layer, b);
  void* vb = ValueBlock(layer, b);
  if (dtype() == DType::kF16) {
    ForEachElement<uint16_t>(kb, vb, bt, kv_dim(), r, [&](int64_t i, uint16_t& k, uint16_t& v) {
      key[i] = F16ToF32(k);
      value[i] = F16ToF32(v);
    });
  } else {
    ForEachElement<float>(kb, vb, bt, kv_dim(), r, [&](int64_t i, float& k, float& v) {
      key[i] = k;
      value[i] = v;
    });
  }
}

ContiguousKvCache::ContiguousKvCache(int64_t num_layers, int64_t capacity, int64_t kv_dim, DType dtype)
    : capacity_(capacity),
      pool_(std::make_unique<KvBlockPool>(KvBlockPool::Options{
          num_layers, kv_dim, kBlockTokens, std::max<int64_t>(1, (capacity + kBlockTokens - 1) / kBlockTokens),
          dtype})),
      paged_(pool_.get(), kv_dim) {
  paged_.Reserve(capacity);  // cannot fail: the pool has exactly these blocks
}

}  // namespace tierserve
