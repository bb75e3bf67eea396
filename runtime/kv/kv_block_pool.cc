#include "runtime/kv/kv_block_pool.h"

#include <cassert>
#include <tuple>
#include <utility>

#include "absl/hash/hash.h"

namespace tierserve {

std::optional<DType> ParseKvCacheDtype(absl::string_view name) {
  if (name == "fp32") return DType::kF32;
  if (name == "fp16") return DType::kF16;
  return std::nullopt;
}

const char* KvCacheDtypeName(DType t) { return t == DType::kF16 ? "fp16" : "fp32"; }

KvBlockPool::KvBlockPool(const Options& options, std::shared_ptr<Buffer> storage)
    : o_(options), device_storage_(std::move(storage)), info_(static_cast<size_t>(options.num_blocks)) {
  if (device_storage_ != nullptr) {
    assert(device_storage_->size() >= StorageBytes(o_));
    storage_ = device_storage_->data();
  } else {
    own_storage_.reset(new float[(static_cast<size_t>(StorageBytes(o_)) + sizeof(float) - 1) / sizeof(float)]);
    storage_ = reinterpret_cast<uint8_t*>(own_storage_.get());
  }
  clean_.reserve(static_cast<size_t>(o_.num_blocks));
  for (int64_t b = o_.num_blocks - 1; b >= 0; --b) clean_.push_back(static_cast<int32_t>(b));
}

int32_t KvBlockPool::Allocate() {
  int32_t b = kNoBlock;
  if (!clean_.empty()) {
    b = clean_.back();
    clean_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Unpublish(b);
  } else {
    return kNoBlock;
  }
  info_[b].refs = 1;
  ++used_;
  return b;
}

void KvBlockPool::AddRef(int32_t block) {
  BlockInfo& bi = info_[block];
  if (bi.refs++ == 0) {
    // Revived from the cache.
    lru_.erase(bi.lru_pos);
    ++used_;
  }
}

void KvBlockPool::Release(int32_t block) {
  BlockInfo& bi = info_[block];
  if (--bi.refs > 0) return;
  --used_;
  if (bi.published) {
    bi.lru_pos = lru_.insert(lru_.end(), block);
  } else {
    clean_.push_back(block);
  }
}

uint64_t KvBlockPool::HashBlock(uint64_t parent, absl::Span<const int32_t> tokens) {
  // Never 0, which stands for "no parent".
  const uint64_t h = absl::Hash<std::tuple<uint64_t, absl::Span<const int32_t>>>{}(std::make_tuple(parent, tokens));
  return h == 0 ? 1 : h;
}

int32_t KvBlockPool::Lookup(uint64_t parent, absl::Span<const int32_t> tokens) {
  auto it = by_hash_.find(HashBlock(parent, tokens));
  if (it == by_hash_.end()) return kNoBlock;
  const BlockInfo& bi = info_[it->second];
  if (bi.parent != parent || absl::Span<const int32_t>(bi.tokens) != tokens) return kNoBlock;
  AddRef(it->second);
  return it->second;
}

void KvBlockPool::Publish(int32_t block, uint64_t parent, absl::Span<const int32_t> tokens) {
  BlockInfo& bi = info_[block];
  if (bi.published) return;
  const uint64_t hash = HashBlock(parent, tokens);
  if (!by_hash_.emplace(hash, block).second) return;  // an equal block (or a collision) is there
  bi.published = true;
  bi.hash = hash;
  bi.parent = parent;
  bi.tokens.assign(tokens.begin(), tokens.end());
}

void KvBlockPool::Unpublish(int32_t block) {
  BlockInfo& bi = info_[block];
  by_hash_.erase(bi.hash);
  bi.published = false;
  bi.tokens.clear();
}

}  // namespace tierserve
