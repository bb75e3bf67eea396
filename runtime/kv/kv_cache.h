// Per-sequence key/value cache. The model writes the keys and values of each
// new position and reads every earlier one, a block at a time: positions
// [b * block_tokens(), (b + 1) * block_tokens()) are contiguous rows.
//
//   ContiguousKvCache  one slab per sequence (one block): tests, benchmarks
//   PagedKvCache       a block table into the engine's KvBlockPool
//
// Thread-safety: a cache belongs to one sequence; not thread-safe.
#ifndef TIERSERVE_RUNTIME_KV_KV_CACHE_H_
#define TIERSERVE_RUNTIME_KV_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "runtime/kv/kv_block_pool.h"

namespace tierserve {

class KvCache {
 public:
  virtual ~KvCache() = default;
  // Positions it can hold.
  virtual int64_t capacity() const = 0;
  // Positions per block; rows within a block are contiguous.
  virtual int64_t block_tokens() const = 0;
  // The key / value row (kv_dim floats) of `layer` at `pos`; the rows of pos's
  // block follow it up to the block's end. REQUIRES: 0 <= pos < capacity().
  virtual float* KeyRow(int64_t layer, int64_t pos) = 0;
  virtual float* ValueRow(int64_t layer, int64_t pos) = 0;
};

// One slab: [layer][pos][kv_dim] for keys, the same for values.
class ContiguousKvCache final : public KvCache {
 public:
  ContiguousKvCache(int64_t num_layers, int64_t capacity, int64_t kv_dim)
      : capacity_(capacity), kv_dim_(kv_dim),
        keys_(static_cast<size_t>(num_layers * capacity * kv_dim)),
        values_(static_cast<size_t>(num_layers * capacity * kv_dim)) {}

  int64_t capacity() const override { return capacity_; }
  int64_t block_tokens() const override { return capacity_ > 0 ? capacity_ : 1; }
  float* KeyRow(int64_t layer, int64_t pos) override {
    return keys_.data() + (layer * capacity_ + pos) * kv_dim_;
  }
  float* ValueRow(int64_t layer, int64_t pos) override {
    return values_.data() + (layer * capacity_ + pos) * kv_dim_;
  }

 private:
  int64_t capacity_;
  int64_t kv_dim_;
  std::vector<float> keys_;
  std::vector<float> values_;
};

// A block table into a pool. Holds one reference on each of its blocks and
// releases them when cleared or destroyed.
class PagedKvCache final : public KvCache {
 public:
  PagedKvCache(KvBlockPool* pool, int64_t kv_dim) : pool_(pool), kv_dim_(kv_dim) {}
  ~PagedKvCache() override { Clear(); }
  PagedKvCache(const PagedKvCache&) = delete;
  PagedKvCache& operator=(const PagedKvCache&) = delete;

  int64_t capacity() const override { return static_cast<int64_t>(blocks_.size()) * pool_->block_tokens(); }
  int64_t block_tokens() const override { return pool_->block_tokens(); }
  float* KeyRow(int64_t layer, int64_t pos) override {
    const int64_t bt = pool_->block_tokens();
    return pool_->Keys(blocks_[pos / bt], layer) + (pos % bt) * kv_dim_;
  }
  float* ValueRow(int64_t layer, int64_t pos) override {
    const int64_t bt = pool_->block_tokens();
    return pool_->Values(blocks_[pos / bt], layer) + (pos % bt) * kv_dim_;
  }

  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Appends a block the caller holds a reference on (a prefix-cache hit).
  void Append(int32_t block) { blocks_.push_back(block); }
  // Allocates blocks until capacity() >= tokens. False when the pool ran out
  // (the blocks taken so far stay).
  bool Reserve(int64_t tokens) {
    while (capacity() < tokens) {
      const int32_t b = pool_->Allocate();
      if (b == KvBlockPool::kNoBlock) return false;
      blocks_.push_back(b);
    }
    return true;
  }
  // Releases every block.
  void Clear() {
    for (int32_t b : blocks_) pool_->Release(b);
    blocks_.clear();
  }
  KvBlockPool* pool() const { return pool_; }

 private:
  KvBlockPool* pool_;
  int64_t kv_dim_;
  std::vector<int32_t> blocks_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_KV_KV_CACHE_H_
