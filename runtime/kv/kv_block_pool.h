// The KV cache of one engine as fixed-size blocks (vLLM's paged attention):
// a block holds the keys and values of `block_tokens` consecutive positions
// of one sequence, for every layer. Sequences hold block tables
// (PagedKvCache); running out of blocks is a return value the scheduler
// answers by preempting, never a crash.
//
// Prefix caching: a full block whose tokens (and every token before them) are
// known is published under the hash chain of its contents. A later sequence
// starting with the same tokens takes a reference to it instead of computing
// it again (every chat request begins with the same rendered system prompt).
// Blocks nobody references stay cached until the pool needs room, then the
// least recently released is evicted. Reuse is exact: the kernels are batch
// invariant, so a block's keys and values are the same bits whichever forward
// computed them. A lookup compares the block's tokens and its parent's hash,
// not the hash alone.
//
// Memory: the pool reserves num_blocks blocks of address space up front,
// from a device's Buffer (counted there as MemoryKind::kKv) or, without
// one, from host memory nobody counts; the pages are committed as blocks
// are first written (blocks are handed out
// lowest index first, so a lightly loaded pool touches little memory). A
// layer's blocks are adjacent (layer-major), so a sequence's keys of one
// layer are mostly one contiguous run.
//
// Thread-safety: not thread-safe; one engine thread owns the pool. Readers
// of the counters from other threads go through the engine.
#ifndef TIERSERVE_RUNTIME_KV_KV_BLOCK_POOL_H_
#define TIERSERVE_RUNTIME_KV_KV_BLOCK_POOL_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/common/attention.h"
#include "runtime/device/device.h"

namespace tierserve {

// The element types a KV cache stores (`kv_cache_dtype`, `--kv_cache_dtype`):
// "fp32" (DType::kF32) and "fp16" (DType::kF16).
inline constexpr char kKvCacheDtypes[] = "fp32 or fp16";
std::optional<DType> ParseKvCacheDtype(absl::string_view name);
// "fp32" or "fp16". REQUIRES: t is one of the two.
const char* KvCacheDtypeName(DType t);

class KvBlockPool {
 public:
  struct Options {
    int64_t num_layers = 0;
    int64_t kv_dim = 0;        // elements per key (and per value) row
    int64_t block_tokens = 16;
    int64_t num_blocks = 0;
    DType dtype = DType::kF32;  // of the stored elements: kF32 or kF16
  };
  static constexpr int32_t kNoBlock = -1;

  // REQUIRES: every option > 0; KvElementBytes(dtype) > 0; num_blocks < 2^31; `storage`, when given,
  // holds at least BytesPerBlock(...) * num_blocks bytes (StorageBytes) and
  // is host-addressable.
  explicit KvBlockPool(const Options& options, std::shared_ptr<Buffer> storage = nullptr);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  static int64_t BytesPerBlock(int64_t num_layers, int64_t kv_dim, int64_t block_tokens, DType dtype) {
    return 2 * num_layers * block_tokens * kv_dim * KvElementBytes(dtype);
  }
  static int64_t StorageBytes(const Options& o) {
    return BytesPerBlock(o.num_layers, o.kv_dim, o.block_tokens, o.dtype) * o.num_blocks;
  }

  int64_t block_tokens() const { return o_.block_tokens; }
  int64_t kv_dim() const { return o_.kv_dim; }
  DType dtype() const { return o_.dtype; }
  int64_t num_blocks() const { return o_.num_blocks; }
  // Blocks referenced by at least one sequence.
  int64_t used_blocks() const { return used_; }
  // Blocks only the prefix cache holds (evictable).
  int64_t cached_blocks() const { return static_cast<int64_t>(lru_.size()); }
  // Blocks Allocate can hand out now: never used, released, or evictable.
  int64_t free_blocks() const { return o_.num_blocks - used_; }

  // A block for one sequence (reference count 1): a clean one if any, else
  // the least recently released cached block, whose cache entry is dropped.
  // kNoBlock when every block is referenced.
  int32_t Allocate();
  // One more / one fewer reference. At zero a published block stays cached;
  // an unpublished one is free again.
  void AddRef(int32_t block);
  void Release(int32_t block);
  // References held on `block` (0 when free or cached).
  int32_t refs(int32_t block) const { return info_[block].refs; }

  // The hash of a full block of `tokens` that follows the block hashed
  // `parent` (0 for the first block of a sequence).
  static uint64_t HashBlock(uint64_t parent, absl::Span<const int32_t> tokens);
  // The cached block holding `tokens` after `parent`, with a reference taken
  // for the caller, or kNoBlock. REQUIRES: tokens.size() == block_tokens().
  int32_t Lookup(uint64_t parent, absl::Span<const int32_t> tokens);
  // Offers a full `block` (referenced by the caller) for reuse under the hash
  // chain (parent, tokens). If an equal block is already published this one
  // stays private. REQUIRES: tokens.size() == block_tokens().
  void Publish(int32_t block, uint64_t parent, absl::Span<const int32_t> tokens);

  // Keys / values of `layer` in `block`: block_tokens * kv_dim elements of
  // dtype, laid out as KvView (kernels/common/attention.h) says: keys
  // transposed, values by position. Storage is layer-major: one layer's
  // blocks are adjacent, so a sequence whose blocks were handed out in order
  // reads each layer's keys and values as one stream (fewer pages and TLB
  // entries than block-major).
  void* Keys(int32_t block, int64_t layer) { return Base(block, layer); }
  void* Values(int32_t block, int64_t layer) { return Base(block, layer) + LayerBytes(); }

 private:
  struct BlockInfo {
    int32_t refs = 0;
    bool published = false;
    uint64_t hash = 0;
    uint64_t parent = 0;
    std::vector<int32_t> tokens;           // when published
    std::list<int32_t>::iterator lru_pos;  // when cached (refs == 0, published)
  };
  int64_t LayerBytes() const { return o_.block_tokens * o_.kv_dim * KvElementBytes(o_.dtype); }
  uint8_t* Base(int32_t block, int64_t layer) {
    return storage_ + (layer * o_.num_blocks + block) * 2 * LayerBytes();
  }
  void Unpublish(int32_t block);

  Options o_;
  // Uninitialized: pages commit on first write. One of the two owns storage_.
  std::shared_ptr<Buffer> device_storage_;
  std::unique_ptr<float[]> own_storage_;  // floats: aligned for any element type
  uint8_t* storage_ = nullptr;
  std::vector<BlockInfo> info_;
  std::vector<int32_t> clean_;  // never used or released unpublished; lowest index at the back
  std::list<int32_t> lru_;      // cached, least recently released first
  absl::flat_hash_map<uint64_t, int32_t> by_hash_;
  int64_t used_ = 0;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_KV_KV_BLOCK_POOL_H_
