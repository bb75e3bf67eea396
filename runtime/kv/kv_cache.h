// Per-sequence key/value cache. The model stores the key and value rows of
// each new position and attention reads every earlier one, a block at a
// time, in the layout of KvView (kernels/common/attention.h): keys
// transposed within a block, values by position, elements of dtype() (fp32,
// or fp16 to halve what long contexts read).
//
//   PagedKvCache       a block table into the engine's KvBlockPool
//   ContiguousKvCache  a sequence's own pool of capacity's blocks: tests,
//                      benchmarks, the CLI
//
// Thread-safety: a cache belongs to one sequence; not thread-safe.
#ifndef TIERSERVE_RUNTIME_KV_KV_CACHE_H_
#define TIERSERVE_RUNTIME_KV_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/kv/kv_block_pool.h"

namespace tierserve {

class KvCache {
 public:
  virtual ~KvCache() = default;
  // Positions it can hold.
  virtual int64_t capacity() const = 0;
  // Positions per block.
  virtual int64_t block_tokens() const = 0;
  // Elements per key (and per value) row.
  virtual int64_t kv_dim() const = 0;
  // Stored element type: kF32 or kF16.
  virtual DType dtype() const = 0;
  // The keys / values of `layer` in the sequence's block b (positions
  // [b * block_tokens(), (b + 1) * block_tokens())), laid out as KvView says.
  // REQUIRES: 0 <= b < capacity() / block_tokens() rounded up.
  virtual void* KeyBlock(int64_t layer, int64_t b) = 0;
  virtual void* ValueBlock(int64_t layer, int64_t b) = 0;

  // Stores position pos's key and value rows of `layer` (kv_dim() floats
  // each), rounded to dtype() (to nearest even for fp16).
  // REQUIRES: 0 <= pos < capacity().
  void Store(int64_t layer, int64_t pos, const float* key, const float* value);
  // Reads them back as floats.
  void Load(int64_t layer, int64_t pos, float* key, float* value);
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
  int64_t kv_dim() const override { return kv_dim_; }
  DType dtype() const override { return pool_->dtype(); }
  void* KeyBlock(int64_t layer, int64_t b) override { return pool_->Keys(blocks_[b], layer); }
  void* ValueBlock(int64_t layer, int64_t b) override { return pool_->Values(blocks_[b], layer); }

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

// One sequence's cache of `capacity` positions in a pool of its own (blocks
// of kBlockTokens, all taken up front).
class ContiguousKvCache final : public KvCache {
 public:
  static constexpr int64_t kBlockTokens = 16;
  ContiguousKvCache(int64_t num_layers, int64_t capacity, int64_t kv_dim, DType dtype = DType::kF32);

  int64_t capacity() const override { return capacity_; }
  int64_t block_tokens() const override { return kBlockTokens; }
  int64_t kv_dim() const override { return paged_.kv_dim(); }
  DType dtype() const override { return paged_.dtype(); }
  void* KeyBlock(int64_t layer, int64_t b) override { return paged_.KeyBlock(layer, b); }
  void* ValueBlock(int64_t layer, int64_t b) override { return paged_.ValueBlock(layer, b); }

 private:
  int64_t capacity_;
  std::unique_ptr<KvBlockPool> pool_;
  PagedKvCache paged_;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_KV_KV_CACHE_H_
