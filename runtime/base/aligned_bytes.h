// Owned host bytes aligned to a cache line (64), so SIMD kernels and
// streamed copies of them see the same alignment wherever they live.
#ifndef TIERSERVE_RUNTIME_BASE_ALIGNED_BYTES_H_
#define TIERSERVE_RUNTIME_BASE_ALIGNED_BYTES_H_

#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "runtime/base/host_memory.h"

namespace tierserve {

constexpr int64_t AlignUp(int64_t n, int64_t alignment = kByteAlignment) {
  return (n + alignment - 1) / alignment * alignment;
}

class AlignedBytes {
 public:
  AlignedBytes() = default;
  // `size` zeroed bytes; std::bad_alloc when memory runs out, as std::vector.
  explicit AlignedBytes(int64_t size) : size_(size) {
    if (size == 0) return;
    data_ = AllocateHostBytes(size);
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, static_cast<size_t>(size));
  }
  ~AlignedBytes() { FreeHostBytes(data_, size_); }
  AlignedBytes(AlignedBytes&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  AlignedBytes& operator=(AlignedBytes&& other) noexcept {
    if (this != &other) {
      FreeHostBytes(data_, size_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;

  uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  uint8_t* data_ = nullptr;
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
