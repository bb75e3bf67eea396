// Per-sequence key/value cache. The model writes the keys and values of each
// new position and reads every earlier one; how rows are stored (one
// contiguous slab now, pages later) is the cache's business.
//
// Thread-safety: a cache belongs to one sequence; not thread-safe.
#ifndef TIERSERVE_RUNTIME_MODEL_KV_CACHE_H_
#define TIERSERVE_RUNTIME_MODEL_KV_CACHE_H_

#include <cstdint>
#include <vector>

namespace tierserve {

class KvCache {
 public:
  virtual ~KvCache() = default;
  // Positions it can hold.
  virtual int64_t capacity() const = 0;
  // The key / value row (num_kv_heads * head_dim floats) of `layer` at `pos`.
  // REQUIRES: 0 <= pos < capacity().
  virtual float* KeyRow(int64_t layer, int64_t pos) = 0;
  virtual float* ValueRow(int64_t layer, int64_t pos) = 0;
};

// One slab per sequence: [layer][pos][kv_dim] for keys, the same for values.
class ContiguousKvCache final : public KvCache {
 public:
  ContiguousKvCache(int64_t num_layers, int64_t capacity, int64_t kv_dim)
      : capacity_(capacity), kv_dim_(kv_dim),
        keys_(static_cast<size_t>(num_layers * capacity * kv_dim)),
        values_(static_cast<size_t>(num_layers * capacity * kv_dim)) {}

  int64_t capacity() const override { return capacity_; }
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

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_MODEL_KV_CACHE_H_
