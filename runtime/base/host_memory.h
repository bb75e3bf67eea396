// Large host allocations straight from the kernel. A buffer of weights or
// staging is megabytes: made with mmap and returned with munmap, it leaves no
// freed heap behind — glibc's malloc raises its mmap threshold after such a
// free and serves the next ones from the heap, where freed chunks stay in the
// process's resident memory. Small sizes still come from aligned_alloc.
#ifndef TIERSERVE_RUNTIME_BASE_HOST_MEMORY_H_
#define TIERSERVE_RUNTIME_BASE_HOST_MEMORY_H_

#include <cstdint>

namespace tierserve {

// A cache line: what host buffers, and the arrays inside weight images,
// start on.
inline constexpr int64_t kByteAlignment = 64;

// `bytes` (> 0) aligned to kByteAlignment (a page for large sizes), or nullptr when the
// system refuses. Uninitialized.
uint8_t* AllocateHostBytes(int64_t bytes);
// Frees what AllocateHostBytes(bytes) returned; `bytes` must be the same.
void FreeHostBytes(uint8_t* data, int64_t bytes);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_HOST_MEMORY_H_
