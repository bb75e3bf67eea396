// Owned host bytes aligned to a cache line (64), so SIMD kernels and
// streamed copies of them see the same alignment wherever they live.
#ifndef TIERSERVE_RUNTIME_BASE_ALIGNED_BYTES_H_
#define TIERSERVE_RUNTIME_BASE_ALIGNED_BYTES_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace tierserve {

inline constexpr int64_t kByteAlignment = 64;

constexpr int64_t AlignUp(int64_t n, int64_t alignment = kByteAlignment) {
  return (n + alignment - 1) / alignment * alignment;
}

class AlignedBytes {
 public:
  AlignedBytes() = default;
  // `size` zeroed bytes; std::bad_alloc when memory runs out, as std::vector.
  explicit AlignedBytes(int64_t size) : size_(size) {
    if (size == 0) return;
    void* p = std::aligned_alloc(kByteAlignment, static_cast<size_t>(AlignUp(size)));
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, static_cast<size_t>(size));
    data_.reset(static_cast<uint8_t*>(p));
  }

  uint8_t* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> data_;
  int64_t size_ = 0;
};

// Offsets of consecutive arrays in one image, each aligned to 64.
class ImageLayout {
 public:
  // The offset of a new array of `bytes` bytes.
  int64_t Add(int64_t bytes) {
    const int64_t offset = AlignUp(size_);
    size_ = offset + bytes;
    return offset;
  }
  int64_t size() const { return size_; }

 private:
  int64_t size_ = 0;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_ALIGNED_BYTES_H_
