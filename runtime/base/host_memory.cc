#include "runtime/base/host_memory.h"

#include <sys/mman.h>

#include <cstdlib>

namespace tierserve {
namespace {

constexpr int64_t kMapThreshold = 64 << 10;

}  // namespace

uint8_t* AllocateHostBytes(int64_t bytes) {
  if (bytes >= kMapThreshold) {
    void* p = mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  const int64_t rounded = (bytes + kByteAlignment - 1) / kByteAlignment * kByteAlignment;
  return static_cast<uint8_t*>(std::aligned_alloc(kByteAlignment, static_cast<size_t>(rounded)));
}

void FreeHostBytes(uint8_t* data, int64_t bytes) {
  if (data == nullptr) return;
  if (bytes >= kMapThreshold) {
    munmap(data, static_cast<size_t>(bytes));
  } else {
    std::free(data);
  }
}

}  // namespace tierserve
