#include "runtime/kv/kv_cache.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/common/half.h"

namespace tierserve {
namespace {

constexpr int64_t kLayers = 3, kKvDim = 24;

std::vector<float> RandomRow(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> row(kKvDim);
  for (float& x : row) x = normal(rng);
  return row;
}

// What is stored comes back: exactly in fp32, rounded to nearest even in
// fp16; whichever cache holds it, and whatever block size the pool has.
TEST(KvCacheTest, StoredRowsComeBackAsFp32OrRoundedToFp16) {
  for (DType dtype : {DType::kF32, DType::kF16}) {
    for (int64_t bt : {1, 5, 16}) {
      KvBlockPool pool(KvBlockPool::Options{kLayers, kKvDim, bt, 40, dtype});
      PagedKvCache paged(&pool, kKvDim);
      ASSERT_TRUE(paged.Reserve(37));
      ContiguousKvCache slab(kLayers, 37, kKvDim, dtype);
      for (KvCache* cache : {static_cast<KvCache*>(&paged), static_cast<KvCache*>(&slab)}) {
        ASSERT_EQ(cache->dtype(), dtype);
        std::mt19937 rng(static_cast<uint32_t>(bt));
        std::vector<std::vector<float>> keys, values;
        for (int64_t l = 0; l < kLayers; ++l) {
          for (int64_t p = 0; p < 37; ++p) {
            keys.push_back(RandomRow(rng));
            values.push_back(RandomRow(rng));
            cache->Store(l, p, keys.back().data(), values.back().data());
          }
        }
        std::vector<float> k(kKvDim), v(kKvDim);
        for (int64_t l = 0, row = 0; l < kLayers; ++l) {
          for (int64_t p = 0; p < 37; ++p, ++row) {
            cache->Load(l, p, k.data(), v.data());
            for (int64_t i = 0; i < kKvDim; ++i) {
              float want_k = keys[row][i], want_v = values[row][i];
              if (dtype == DType::kF16) {
                want_k = F16ToF32(F32ToF16(want_k));
                want_v = F16ToF32(F32ToF16(want_v));
              }
              ASSERT_EQ(k[i], want_k) << DTypeName(dtype) << " bt " << bt << " layer " << l << " pos " << p;
              ASSERT_EQ(v[i], want_v) << DTypeName(dtype) << " bt " << bt << " layer " << l << " pos " << p;
            }
          }
        }
      }
    }
  }
}

// fp16 rounding at the edges, as F32ToF16 does it (the conversion may run in
// hardware): ties to even, subnormals, the largest finite value, overflow to
// infinity, signed zeros.
TEST(KvCacheTest, Fp16RoundingAtTheEdgesIsF32ToF16s) {
  const float tie = 1.0f + std::ldexp(1.0f, -11);  // halfway between two fp16 values
  const std::vector<float> edge = {tie, -tie, 1.0f + 3 * std::ldexp(1.0f, -11), 65504.0f, 65519.0f, 65520.0f,
                                   1e9f, -1e9f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-5f, -1e-7f, 0.0f, -0.0f,
                                   6.1035156e-5f, 6.1e-5f, 0.1f, -0.3f, 3.14159265f, 1e-30f, 2048.5f, 4097.0f,
                                   -65505.0f};
  ASSERT_EQ(static_cast<int64_t>(edge.size()), kKvDim);
  ContiguousKvCache cache(1, 3, kKvDim, DType::kF16);
  std::vector<float> reversed(edge.rbegin(), edge.rend());
  cache.Store(0, 2, edge.data(), reversed.data());
  std::vector<float> k(kKvDim), v(kKvDim);
  cache.Load(0, 2, k.data(), v.data());
  for (int64_t i = 0; i < kKvDim; ++i) {
    const uint16_t want_k = F32ToF16(edge[i]), want_v = F32ToF16(reversed[i]);
    EXPECT_EQ(F32ToF16(k[i]), want_k) << edge[i];
    EXPECT_EQ(F32ToF16(v[i]), want_v) << reversed[i];
    EXPECT_EQ(std::signbit(k[i]), std::signbit(edge[i])) << edge[i];
  }
}

// The layout attention reads (KvView): keys transposed within a block,
// values by position.
TEST(KvCacheTest, KeysAreTransposedWithinABlockAndValuesAreByPosition) {
  ContiguousKvCache cache(1, 40, kKvDim, DType::kF32);
  ASSERT_EQ(cache.block_tokens(), ContiguousKvCache::kBlockTokens);
  std::vector<float> key(kKvDim), value(kKvDim);
  for (int64_t i = 0; i < kKvDim; ++i) {
    key[i] = static_cast<float>(1000 + i);
    value[i] = static_cast<float>(2000 + i);
  }
  cache.Store(0, 21, key.data(), value.data());  // block 1, row 5
  const auto* kb = static_cast<const float*>(cache.KeyBlock(0, 1));
  const auto* vb = static_cast<const float*>(cache.ValueBlock(0, 1));
  for (int64_t i = 0; i < kKvDim; ++i) {
    EXPECT_EQ(kb[i * 16 + 5], key[i]);
    EXPECT_EQ(vb[5 * kKvDim + i], value[i]);
  }
}

// fp16 blocks are half the bytes of fp32 ones, in the pool's accounting.
TEST(KvCacheTest, Fp16BlocksAreHalfTheBytes) {
  EXPECT_EQ(KvBlockPool::BytesPerBlock(30, 192, 16, DType::kF16) * 2, KvBlockPool::BytesPerBlock(30, 192, 16, DType::kF32));
  EXPECT_EQ(KvBlockPool::BytesPerBlock(30, 192, 16, DType::kF16), 2 * 30 * 16 * 192 * 2);
}

}  // namespace
}  // namespace tierserve
